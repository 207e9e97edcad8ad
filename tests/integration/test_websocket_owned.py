"""A WebSocket holds no thread or greenlet of the WSGI server: once its socket
is the engine's, the request returns and the I/O loop (a selector thread, or
gevent's hub) reads and writes it.

A gthread worker with four threads, or a gevent worker with four worker
connections, serves ten times as many WebSockets at once, upgraded from
polling or opened directly, each echoing and answering pings, while polling
requests still get a thread or greenlet. Before, each WebSocket held its
request's thread or greenlet for its whole life: the fifth waited forever.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import websocket  # websocket-client

from tests.integration.gunicorn_runner import Gunicorn, start_gunicorn
from tests.live import PollingClient, http_request, wait_until

pytestmark = pytest.mark.timeout(120)

#: the server's threads (gthread) or worker connections (gevent)
THREADS = 4
SOCKETS = 10 * THREADS
WORKERS = {
    'gthread': ['-k', 'gthread', '--threads', str(THREADS)],
    'gevent': ['-k', 'gevent', '--worker-connections', str(THREADS)],
}


@pytest.fixture(params=sorted(WORKERS))
def few_threads(request: pytest.FixtureRequest) -> Iterator[Gunicorn]:
    server = start_gunicorn(WORKERS[request.param], 'tests.apps.echo:app',
                            {'EIO_PING_INTERVAL': '1.0', 'EIO_PING_TIMEOUT': '5.0'})
    try:
        yield server
    finally:
        server.kill()


def open_websocket(port: int) -> websocket.WebSocket:
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=10)
    assert ws.recv().startswith('0{')
    return ws


def upgraded_websocket(port: int) -> websocket.WebSocket:
    client = PollingClient(port)
    client.handshake()
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket&sid={client.sid}',
        timeout=10)
    ws.send('2probe')
    assert ws.recv() == '3probe'
    ws.send('5')
    return ws


def echo(ws: websocket.WebSocket, text: str) -> None:
    """Send ``text``, read up to its echo, answering the pings met on the way."""
    ws.send('4' + text)
    while True:
        frame = ws.recv()
        if frame == '2':
            ws.send('3')
            continue
        if frame == '6':   # the noop that ends the polling GET after an upgrade
            continue
        assert frame == '4' + text
        return


def test_many_more_websockets_than_server_threads_all_echo_and_answer_pings(few_threads):
    port = few_threads.port
    sockets = []
    try:
        for n in range(SOCKETS):
            sockets.append(upgraded_websocket(port) if n % 2 else open_websocket(port))
        for n, ws in enumerate(sockets):
            echo(ws, f'hello {n}')
        # polling still gets a server thread (or greenlet)
        client = PollingClient(port)
        client.handshake()
        client.send('4polling')
        # each session answers the pings of a few intervals (1 s each) and stays
        for round_ in range(3):
            for n, ws in enumerate(sockets):
                ws.settimeout(10)
                frame = ws.recv()
                while frame == '6':
                    frame = ws.recv()
                assert frame == '2', (round_, n, frame)
                ws.send('3')
        for n, ws in enumerate(sockets):
            echo(ws, f'still here {n}')
    finally:
        for ws in sockets:
            ws.close()
    assert 'Traceback' not in few_threads.text(), few_threads.text()


def stats(port: int) -> dict[str, Any]:
    resp = http_request(port, 'GET', '/__stats')
    assert resp.status == 200, resp
    return json.loads(resp.body)


def test_a_client_that_vanishes_ends_its_session_and_frees_its_descriptor(few_threads):
    """The connection the loop owns is closed at its end: its session ends
    and no descriptor is left open."""
    port = few_threads.port
    warm = open_websocket(port)
    echo(warm, 'warm up')   # the loop's own descriptors exist from here
    wait_until(lambda: stats(port)['sessions'] == 1, timeout=10, message='one session')
    before = stats(port)['fds']
    assert before > 0
    sockets = [open_websocket(port) for _ in range(3 * THREADS)]
    for ws in sockets:
        echo(ws, 'bye')
    assert stats(port)['fds'] >= before + len(sockets)
    for ws in sockets:
        ws.sock.shutdown(socket.SHUT_RDWR)
        ws.sock.close()
    wait_until(lambda: stats(port)['sessions'] == 1, timeout=10,
               message='the vanished sessions ended')
    wait_until(lambda: stats(port)['fds'] == before, timeout=10,
               message='their descriptors closed')
    echo(warm, 'still here')
    warm.close()


def test_clients_that_stop_reading_then_leave_mid_write_end_cleanly_beside_a_healthy_one(
        few_threads):
    """Many sessions at once, each owed far more than the socket buffers hold;
    each client stops reading (a small receive buffer), so the loop holds the
    rest of each write; then each leaves at that worst moment, half with a
    reset, half with a close frame it never waits to see answered. Every one
    of them ends, its descriptor closes, and a healthy client echoes meanwhile
    (the loop never waited on any of them)."""
    port = few_threads.port
    healthy = open_websocket(port)
    echo(healthy, 'before')
    wait_until(lambda: stats(port)['sessions'] == 1, timeout=10, message='one session')
    before = stats(port)['fds']
    stuck = []
    try:
        for _ in range(5 * THREADS):
            ws = websocket.create_connection(
                f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=10,
                sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
            opened = ws.recv()
            assert opened.startswith('0{')
            stuck.append((json.loads(opened[1:])['sid'], ws))
            ws.send('4__sendseq 40 100000')   # 4 MB, never read
        for sid, _ws in stuck:
            wait_until(lambda sid=sid: (session(port, sid)['unsent'] or 0) > 0, timeout=20,
                       message=f'{sid}: a write waiting on the socket')
        echo(healthy, 'while they are stuck')
        for n, (_sid, ws) in enumerate(stuck):
            if n % 2:
                ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack('ii', 1, 0))   # a reset
            else:
                ws.send_close()   # and gone, without reading the answer
            ws.sock.close()
        wait_until(lambda: stats(port)['sessions'] == 1, timeout=20,
                   message='every stuck session ended')
        wait_until(lambda: stats(port)['fds'] == before, timeout=10,
                   message='their descriptors closed')
        echo(healthy, 'after')
    finally:
        healthy.close()
        for _sid, ws in stuck:
            ws.sock.close()
    assert 'Traceback' not in few_threads.text(), few_threads.text()


def session(port: int, sid: str) -> dict[str, Any]:
    resp = http_request(port, 'GET', f'/__session?sid={sid}')
    assert resp.status == 200, resp
    return json.loads(resp.body)
