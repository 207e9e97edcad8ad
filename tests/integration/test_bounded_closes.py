"""The end of a session reaches the application on the bounded pool: a wave
of ping timeouts starts no thread per session, and "send buffer full" never
runs the disconnect handler inside the ``send()`` that hit the bound.

The server runs tests/apps/bounds.py, whose disconnect handler waits at a
gate until the test opens it (slow application code, held as long as the
test needs to look): a handler run on a thread per session would keep every
such thread alive, one run inside ``send()`` would keep that send from
returning.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from tests.live import LiveServer, PollingClient, http_request, start_server, wait_until

pytestmark = pytest.mark.timeout(120)

#: max_worker_threads of the servers here
CAP = 8
#: threads that may come and go beside the pool's during a wave (the close
#: timeouts' thread of rfc6455, a thread of the WSGI server)
FEW = 2


def report(server: LiveServer, path: str) -> Any:
    resp = http_request(server.port, 'GET', path)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def open_gate(server: LiveServer) -> None:
    report(server, '/__open_gate')


@pytest.fixture
def wave_server() -> Iterator[LiveServer]:
    """Threads, a pool of CAP, a ping timeout 1.5 s after the open."""
    env = {'EIO_MAX_WORKER_THREADS': str(CAP), 'EIO_PING_INTERVAL': '1.0',
           'EIO_PING_TIMEOUT': '0.5', 'EIO_DISCONNECT_GATE': '1', 'EIO_LOG_LEVEL': 'WARNING'}
    with start_server('gunicorn-gthread', app='tests.apps.bounds:app', env=env) as server:
        yield server


def test_a_wave_of_ping_timeouts_runs_on_the_pool_not_on_a_thread_per_session(
        wave_server: LiveServer) -> None:
    sessions = 500
    before = report(wave_server, '/__peak')
    sids = []
    for _ in range(sessions):
        # raw handshakes, never followed by a GET or a pong: every session
        # stops answering at once and times out 1.5 s after its open
        client = PollingClient(wave_server)
        client.handshake()
        sids.append(client.sid)

    def wave_over_or_too_many_threads() -> dict[str, int] | None:
        stats = report(wave_server, '/__stats')
        if stats['sessions'] == 0 or stats['started_others'] > CAP + FEW:
            return stats
        return None
    try:
        stats = wait_until(wave_over_or_too_many_threads, timeout=30,
                           message='every session timed out')
        # the gate still holds the handlers: as many wait as the pool has workers
        handlers = report(wave_server, '/__handlers')
        assert stats['peak_others'] - before['others'] <= CAP + FEW, stats
        assert stats['peak_workers'] <= CAP, stats
        # nor one that ended at once: no thread started per session
        assert stats['started_others'] <= CAP + FEW, stats
        assert handlers == {'waiting': CAP, 'peak_waiting': CAP}
    finally:
        open_gate(wave_server)
    reasons = wait_until(lambda: (found := report(wave_server, '/__reasons'))
                         and len(found) == sessions and found, timeout=30,
                         message='a disconnect handler call for every session')
    assert reasons == {sid: ['ping timeout'] for sid in sids}


@pytest.fixture(params=['gunicorn-gthread', 'gunicorn-gevent'])
def flood_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """At most 50 packets queued per session; the disconnect handler gated."""
    env = {'EIO_MAX_WORKER_THREADS': str(CAP), 'EIO_MAX_QUEUED_PACKETS': '50',
           'EIO_DISCONNECT_GATE': '1', 'EIO_LOG_LEVEL': 'WARNING'}
    with start_server(request.param, app='tests.apps.bounds:app', env=env) as server:
        yield server


def test_send_buffer_full_runs_the_disconnect_handler_on_the_pool_not_inside_send(
        flood_server: LiveServer) -> None:
    client = PollingClient(flood_server)
    client.handshake()
    sid = client.sid
    assert sid
    # the client never polls again: what the application sends stays queued,
    # and the 51st send finds the queue full
    report(flood_server, f'/__flood?sid={sid}&n=60')
    try:
        calls = wait_until(lambda: report(flood_server, '/__disconnect_calls').get(sid),
                           timeout=10, message='the disconnect handler called')
        flood = report(flood_server, '/__flood_state')
        assert calls['inside_send'] is False, (calls, flood)
        assert calls['thread'] != flood['thread'], (calls, flood)
        # the sender finished while the handler still waits at the gate: the
        # send that hit the bound returned without waiting for it
        flood = wait_until(lambda: (state := report(flood_server, '/__flood_state'))['done']
                           and state, timeout=10, message='the sends finished')
        assert flood['sends'] == 60 and flood['ended_at'] == 51, flood
        assert report(flood_server, '/__handlers')['waiting'] == 1
    finally:
        open_gate(flood_server)
    assert report(flood_server, '/__reasons') == {sid: ['send buffer full']}


@pytest.fixture
def stuck_writers_server() -> Iterator[LiveServer]:
    """Threads, a pool of CAP, a ping timeout 3 s after the open."""
    env = {'EIO_MAX_WORKER_THREADS': str(CAP), 'EIO_PING_INTERVAL': '2.0',
           'EIO_PING_TIMEOUT': '1.0', 'EIO_LOG_LEVEL': 'WARNING'}
    with start_server('gunicorn-gthread', app='tests.apps.bounds:app', env=env) as server:
        yield server


def test_clients_that_stop_reading_mid_broadcast_end_by_ping_timeout_holding_no_thread(
        stuck_writers_server: LiveServer) -> None:
    """Three times the pool's size of clients stop reading while each is owed
    6 MB: the broadcast returns, no thread or worker waits on any of them, and
    each one's ping timeout ends it (its close is cut at the close timeout)."""
    server = stuck_writers_server
    sockets = []
    try:
        for _ in range(3 * CAP):
            ws = websocket.create_connection(
                f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket',
                timeout=10, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
            assert ws.recv().startswith('0{')
            sockets.append(ws)
        report(server, '/__peak')   # counts threads started from here on
        # 6 MB to each client, which never reads again (nor answers a ping)
        assert http_request(server.port, 'GET', '/__broadcast?n=10&size=600000').status == 200
        wait_until(lambda: report(server, '/__stats')['sessions'] == 0, timeout=30,
                   message='every session ended')
        reasons = wait_until(lambda: (found := report(server, '/__reasons'))
                             and len(found) == len(sockets) and found, timeout=30,
                             message='a disconnect handler call for every session')
        assert set(map(tuple, reasons.values())) == {('ping timeout',)}
        stats = report(server, '/__stats')
        assert stats['started_others'] <= CAP + FEW, stats
    finally:
        for ws in sockets:
            ws.sock.close()
