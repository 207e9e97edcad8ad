"""Threading mode has hard bounds: closing or writing to many WebSockets at once
starts no more threads than ``max_worker_threads`` (plus the I/O loop's one
thread, which writes what the sockets did not take and runs every close
timeout)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import websocket

from tests.integration.gunicorn_runner import Gunicorn, start_gunicorn
from tests.live import http_request, wait_until

CAP = 8
SESSIONS = 200


@pytest.fixture
def server() -> Iterator[Gunicorn]:
    gunicorn = start_gunicorn(['-k', 'gthread', '--threads', str(SESSIONS + 50),
                               '--worker-connections', str(SESSIONS * 2)],
                              'tests.apps.bounds:app',
                              {'EIO_MAX_WORKER_THREADS': str(CAP), 'EIO_LOG_LEVEL': 'INFO'})
    yield gunicorn
    gunicorn.kill()


def stats(server: Gunicorn, path: str = '/__stats') -> dict[str, int]:
    """The server's thread counts (tests/apps/bounds.py)."""
    resp = http_request(server.port, 'GET', path)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def restart_peaks(server: Gunicorn) -> dict[str, int]:
    return stats(server, '/__peak')


def open_websockets(server: Gunicorn, count: int, **options) -> list[websocket.WebSocket]:
    sockets = []
    for _ in range(count):
        ws = websocket.create_connection(
            f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket', timeout=10,
            **options)
        assert ws.recv().startswith('0{')
        sockets.append(ws)
    return sockets


@pytest.mark.timeout(120)
def test_disconnecting_every_websocket_starts_no_thread_per_connection(server: Gunicorn):
    sockets = open_websockets(server, SESSIONS)
    try:
        # the pool's workers from the handshakes are idle by now or soon gone:
        # count from here
        before = restart_peaks(server)
        assert before['sessions'] == SESSIONS
        assert http_request(server.port, 'GET', '/__disconnect_all').status == 200
        # these clients do not answer the close frame: every connection waits
        # out its close timeout on the server
        wait_until(lambda: stats(server)['sessions'] == 0, timeout=30,
                   message='every session closed')
        report = stats(server)
        assert report['peak_workers'] <= CAP, report
        # threads that are neither a request's nor the heartbeats' scheduler: the pool and
        # the close timeouts' thread, nothing per connection
        assert report['peak_others'] - before['others'] <= CAP + 1, report
    finally:
        for ws in sockets:
            ws.sock.close()


@pytest.mark.timeout(120)
def test_a_broadcast_to_clients_that_do_not_read_holds_no_thread(server: Gunicorn):
    # tiny receive buffers: the server's sockets to these clients fill up
    sessions = 3 * CAP
    sockets = open_websockets(server, sessions,
                              sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    try:
        # the pool's workers from the handshakes leave once idle: count from none
        wait_until(lambda: stats(server)['workers'] == 0, timeout=30,
                   message='the idle pool workers gone')
        before = restart_peaks(server)
        # 6 MB to each: more than the socket buffers between them hold (the
        # server's send buffer alone grows to 4 MB on Linux, and a send takes
        # what fits there without waiting); the broadcast's sends return at once
        assert http_request(server.port, 'GET', '/__broadcast?n=10&size=600000').status == 200
        report = stats(server)
        # no worker wrote, none waits on a client; one thread at most is new:
        # the I/O loop, which writes the rest once a client reads
        assert report['peak_workers'] == 0, report
        assert report['peak_others'] - before['others'] <= 1, report
        assert report['sessions'] == sessions
    finally:
        for ws in sockets:
            ws.sock.close()
