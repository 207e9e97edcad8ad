"""How the server writes to WebSockets: on the sender's thread when the socket
has room, from the I/O loop when it has not.

A send writes its frame at once, without waiting, when nothing is queued
before it; what the socket does not take goes out from the I/O loop once
the client reads, and no thread waits for it.
Checked from outside on gunicorn's gevent and gthread workers with clients
that stop reading and start again: every message arrives, in order, once,
and a client that does not read holds up nobody else.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import websocket  # websocket-client

from tests.hostile.tools import RawWebSocket
from tests.hostile.tools import stats as server_stats
from tests.live import LiveServer, session_state, wait_for_session, wait_until

from .test_websocket import open_packet, recv, ws_url

pytestmark = pytest.mark.timeout(120)

KINDS = ('gunicorn-gevent', 'gunicorn-gthread')


@pytest.fixture(scope='module', params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def server(kind: str, server_pool) -> LiveServer:
    """Ping 2 s / 2 s, at most 500 packets queued per session."""
    return server_pool.get(kind, 'slow-reader')


@pytest.fixture
def connect(server: LiveServer) -> Iterator:
    opened: list[websocket.WebSocket] = []

    def open_ws(rcvbuf: int | None = None) -> tuple[websocket.WebSocket, str]:
        sockopt = ((socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf),) if rcvbuf else ()
        ws = websocket.create_connection(ws_url(server), timeout=10, sockopt=sockopt,
                                         enable_multithread=True)
        opened.append(ws)
        return ws, open_packet(ws)['sid']
    yield open_ws
    for ws in opened:
        ws.close(timeout=0.5)


def numbered(count: int) -> list[str]:
    return [f'{i:06d}' for i in range(count)]


def read_numbered(ws: websocket.WebSocket, until: str) -> list[str]:
    """The numbers of the messages up to the message ``until`` (pings answered)."""
    got = []
    while True:
        packet = recv(ws, timeout=10)
        if packet == '4' + until:
            return got
        got.append(packet[1:7] if packet[:1] == '4' and packet[7:8] == ' ' else packet)


def test_a_client_that_stops_reading_then_resumes_gets_every_message_in_order_once(
        server: LiveServer, connect):
    ws, sid = connect(rcvbuf=4096)
    # 400 messages of 16 kB: far more than the socket buffers take while the
    # client does not read; the first ones are written by the handler's own
    # send, the rest wait for the writer task
    ws.send('4__sendseq 400 16384')
    # the writer is stuck on the full socket: what follows piles up in the queue
    wait_until(lambda: (session_state(server, sid)['queued'] or 0) > 0, timeout=10,
               message='messages queued behind a full socket')
    ws.send('4after the burst')      # its echo goes out behind all of them
    assert read_numbered(ws, 'sendseq done') == numbered(400)
    assert recv(ws) == '4after the burst'
    # the writer task is done: sends are written at once again, still in order
    ws.send('4__sendseq 300 10')
    assert read_numbered(ws, 'sendseq done') == numbered(300)
    wait_for_session(server, sid, state='open', queued=0)


def test_a_client_that_does_not_read_does_not_delay_a_broadcast_to_the_others(
        server: LiveServer, connect):
    stuck, stuck_sid = connect(rcvbuf=4096)      # never reads again
    sender, sender_sid = connect()
    readers = [connect() for _ in range(20)]
    sender.send(f'4__sendto 400 16384 {stuck_sid}')
    assert recv(sender) == '4sendto done'
    wait_until(lambda: (session_state(server, stuck_sid)['queued'] or 0) > 0, timeout=10,
               message='messages queued for the client that does not read')
    # one message to everyone, the client that does not read first
    targets = ','.join([stuck_sid] + [sid for _, sid in readers])
    started = time.monotonic()
    sender.send(f'4__sendto 1 100 {targets}')
    for ws, _ in readers:
        assert recv(ws) == '4' + 'b' * 100
    took = time.monotonic() - started
    assert recv(sender) == '4sendto done'
    assert took < 2.0, f'the broadcast took {took:.1f} s behind a client that does not read'
    assert session_state(server, stuck_sid)['state'] == 'open'


def test_clients_that_stop_reading_hold_no_handler_thread_and_delay_nobody(
        kind: str, server_pool) -> None:
    """Three times as many clients that stop reading (and stay connected) as
    there are handler threads, each owed megabytes: every handler returns,
    no thread waits on them, and a healthy client's echo comes at once."""
    server = server_pool.get(kind, 'stuck-readers')
    stuck = []
    try:
        for _ in range(24):
            raw = RawWebSocket(server.port, rcvbuf=4096)
            assert raw.status == 101, raw.head
            frame = raw.read_frame()
            assert frame and frame[1].startswith(b'0'), frame
            stuck.append((raw, json.loads(frame[1][1:])['sid']))
        # (on gthread each connection holds one of the server's own threads)
        before = server_stats(server)['threads']
        for raw, _ in stuck:
            raw.send_text('4__sendseq 200 16384')     # 3.2 MB each, never read
        for _, sid in stuck:
            wait_until(lambda sid=sid: (session_state(server, sid)['queued'] or 0) > 0,
                       timeout=10, message=f'messages queued behind the full socket of {sid}')
        healthy = websocket.create_connection(ws_url(server), timeout=10)
        try:
            open_packet(healthy)
            started = time.monotonic()
            healthy.send('4ping me back')
            assert recv(healthy, timeout=10) == '4ping me back'
            took = time.monotonic() - started
        finally:
            healthy.close(timeout=0.5)
        assert took < 2.0, f'an echo took {took:.1f} s behind clients that do not read'
        # 8 handler threads at most, the I/O loop, and nothing per stuck client
        grown = server_stats(server)['threads'] - before
        assert grown <= 8 + 4, f'{grown} more threads with {len(stuck)} clients not reading'
        for _, sid in stuck:
            assert session_state(server, sid)['state'] == 'open'
    finally:
        for raw, _ in stuck:
            raw.close()
