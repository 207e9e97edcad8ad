"""WebSockets for sessions of another process (``Server(cluster=...)``): the
upgrade of a polling session through a process that does not own it, the
relay for the connection's life, and a python-engineio client through a
round-robin nginx. Real redis-server, real gunicorn processes."""

from __future__ import annotations

import os
import signal
import threading
import time

import engineio
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from engineio_wsgi.cluster.relay import LIVENESS_PERIOD
from tests.cluster.test_cluster_polling import GEVENT, held_by_owner, node, on, sessions, state
from tests.live import (
    MESSAGE,
    NOOP,
    Background,
    PollingClient,
    expect_error,
    http_request,
    wait_until,
)

WORKERS = {'gevent': GEVENT, 'gthread': ['-k', 'gthread', '--threads', '20']}


@pytest.fixture(params=sorted(WORKERS))
def pair(request, redis_server, gunicorns):
    env = {'EIO_CLUSTER': redis_server.url, 'EIO_PING_INTERVAL': '5', 'EIO_PING_TIMEOUT': '5'}
    return gunicorns(2, WORKERS[request.param], app='tests.apps.cluster_echo:app', env=env)


def ws_url(port: int, sid: str) -> str:
    return f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket&sid={sid}'


def test_upgrade_through_another_process_then_messages_both_ways(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    waiting = held_by_owner(on(b.port, owner).poll, 10.0, a.port, owner.sid)
    with connect(ws_url(b.port, owner.sid), open_timeout=5, close_timeout=1) as ws:
        # queued before the upgrade completes: waits, then goes on the WebSocket first
        ws.send('2probe')
        assert ws.recv(timeout=5) == '3probe'
        assert [p.type for p in waiting.result(5.0)] == [NOOP]   # polling paused
        on(a.port, owner).send('queued while probing')
        ws.send('5')
        assert ws.recv(timeout=5) == '4queued while probing'
        assert state(a.port, owner.sid)['transport'] == 'websocket'
        expect_error(owner.get(), 400, 3)   # polling on an upgraded sid
        expect_error(on(b.port, owner).post(body=b'4x'), 400, 3)   # also through another process
        ws.send('4whoami')
        assert ws.recv(timeout=5) == '4' + node(a.port)
        for i in range(500):
            ws.send(f'4c{i}')
        ws.send(b'\x01\x02')
        assert [ws.recv(timeout=5) for _ in range(501)] == [f'4c{i}' for i in range(500)] + [
            b'\x01\x02']
        # a second WebSocket for the upgraded session, on either process: accepted
        # and closed at once; the first keeps working
        for port in (a.port, b.port):
            with connect(ws_url(port, owner.sid), open_timeout=5, close_timeout=1) as second:
                with pytest.raises(ConnectionClosed):
                    second.recv(timeout=5)
        ws.send('4still')
        assert ws.recv(timeout=5) == '4still'
        ws.send('4close')
        assert ws.recv(timeout=5) == '1'
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    wait_until(lambda: sessions(a.port) == 0, 5.0, message='session ended on its owner')
    assert sessions(b.port) == 0


def test_failed_probe_through_another_process_resumes_polling(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    with connect(ws_url(b.port, owner.sid), open_timeout=5, close_timeout=1) as ws:
        ws.send('2probe')
        assert ws.recv(timeout=5) == '3probe'
        assert [p.type for p in owner.poll()] == [NOOP]   # paused while probing
    # the probe socket closed without 5: the session carries on over polling
    owner.send('after the probe')
    received = wait_until(lambda: [p for p in owner.poll() if p.type != NOOP], 5.0,
                          message='polling resumed')
    assert [(p.type, p.data) for p in received] == [(MESSAGE, 'after the probe')]


def test_client_closing_the_relayed_websocket_ends_the_session(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    with connect(ws_url(b.port, owner.sid), open_timeout=5, close_timeout=1) as ws:
        ws.send('2probe')
        assert ws.recv(timeout=5) == '3probe'
        ws.send('5')
        wait_until(lambda: state(a.port, owner.sid)['transport'] == 'websocket', 5.0,
                   message='upgraded')
    wait_until(lambda: sessions(a.port) == 0, 5.0, message='session ended on its owner')


@pytest.mark.parametrize('transports', [['polling', 'websocket'], ['polling']])
def test_500_messages_each_way_through_round_robin_nginx(redis_server, gunicorns, nginx_front,
                                                         transports):
    env = {'EIO_CLUSTER': redis_server.url, 'EIO_LOG_LEVEL': 'INFO'}
    a, b = gunicorns(2, GEVENT, app='tests.apps.cluster_echo:app', env=env)
    front = nginx_front([a.port, b.port])
    received: list[str] = []
    done = threading.Event()
    client = engineio.Client()

    @client.on('message')
    def on_message(data):
        received.append(data)
        if len(received) == 500:
            done.set()

    client.connect(f'http://127.0.0.1:{front.port}', transports=transports)
    try:
        if 'websocket' in transports:
            wait_until(lambda: client.transport() == 'websocket', 10.0, message='upgraded')
        for i in range(500):
            client.send(f'm{i}')
        assert done.wait(20), f'{len(received)} of 500 echoes'
        assert received == [f'm{i}' for i in range(500)]
        owner = a if client.sid.startswith(node(a.port)) else b
        if 'websocket' in transports:
            # round robin: the WebSocket (the second request) went to the other process
            assert f'{client.sid} upgraded to websocket, relayed by' in owner.text()
        else:
            assert client.transport() == 'polling'
    finally:
        client.disconnect()


def upgrade_only(ws) -> None:
    """The upgrade alone: an echo could meet a ping on the way."""
    ws.send('2probe')
    assert ws.recv(timeout=5) == '3probe'
    ws.send('5')


def upgrade(ws) -> None:
    upgrade_only(ws)
    ws.send('4hello')
    assert ws.recv(timeout=5) == '4hello'


def test_owner_killed_the_relay_closes_the_websocket(pair, redis_server):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    with connect(ws_url(b.port, owner.sid), open_timeout=5, close_timeout=1) as ws:
        upgrade(ws)
        os.killpg(a.proc.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=LIVENESS_PERIOD + 3)
        assert time.monotonic() - started < LIVENESS_PERIOD + 2


def test_relaying_process_killed_the_owner_ends_the_session(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    with connect(ws_url(b.port, owner.sid), open_timeout=5, close_timeout=1) as ws:
        upgrade(ws)
        os.killpg(b.proc.pid, signal.SIGKILL)
        b.proc.wait()
        # the owner's next delivery reaches no relay: the session ends ("transport close")
        wait_until(lambda: http_request(a.port, 'GET',
                                        f'/__send?sid={owner.sid}&data=x').text == 'done'
                   and sessions(a.port) == 0, 5.0, message='session ended on its owner')


#: pings every 0.4 s, 0.6 s to answer. The bound that holds: a ping crosses
#: two Redis hops to the client and its pong two back, a few milliseconds
#: (tens at worst on a loaded machine); neither waits for the application's
#: work (the pong is taken on the owner's inbox listener, the ping published
#: by a task of its own), so 0.6 s is room enough.
TIGHT_HEARTBEAT = {'EIO_PING_INTERVAL': '0.4', 'EIO_PING_TIMEOUT': '0.6'}


def test_heartbeat_through_the_relay(redis_server, gunicorns):
    env = {'EIO_CLUSTER': redis_server.url, **TIGHT_HEARTBEAT}
    a, b = gunicorns(2, GEVENT, app='tests.apps.cluster_echo:app', env=env)
    owner = PollingClient(a.port)
    owner.handshake()
    with connect(ws_url(b.port, owner.sid), open_timeout=5, close_timeout=1) as ws:
        upgrade_only(ws)
        # the owner's pings reach the client through b, its pongs the owner
        for _ in range(4):
            assert ws.recv(timeout=3) == '2'
            ws.send('3')
        assert state(a.port, owner.sid)['exists']
        # no pong: the owner's ping timeout closes the session, and b the socket
        assert ws.recv(timeout=3) == '2'
        assert ws.recv(timeout=3) == '1'
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=3)
    wait_until(lambda: sessions(a.port) == 0, 5.0, message='session ended on its owner')


def test_a_relayed_heartbeat_waits_for_no_worker_the_handlers_hold(redis_server, gunicorns):
    """Threading mode: every shared worker of the owner (max_worker_threads)
    runs a handler that blocks; the relayed session's pings still reach its
    client and its pongs the owner, as a local WebSocket's do (PROTOCOL.md,
    Heartbeat: pongs on the I/O path, never behind the application)."""
    env = {'EIO_CLUSTER': redis_server.url, 'EIO_MAX_WORKER_THREADS': '2', **TIGHT_HEARTBEAT}
    a, b = gunicorns(2, WORKERS['gthread'], app='tests.apps.cluster_echo:app', env=env)
    owner = PollingClient(a.port)
    owner.handshake()
    with connect(ws_url(b.port, owner.sid), open_timeout=5, close_timeout=1) as ws:
        upgrade_only(ws)
        # both workers held for 4 s by other sessions' handlers
        for _ in range(2):
            busy = PollingClient(a.port)
            busy.handshake()
            busy.send('block:4')
        # a third session's message waits for a worker: its echo tells when one was free
        witness = PollingClient(a.port)
        witness.handshake()
        witness.send('after the blocks')
        echoed = Background(witness.receive, 1, 15.0)
        # five pings answered: 2 s, twice pingInterval + pingTimeout
        for _ in range(5):
            assert ws.recv(timeout=3) == '2'
            ws.send('3')
        pings_done = time.monotonic()
        assert state(a.port, owner.sid)['exists']
        assert echoed.result(15.0) == ['after the blocks']
        assert echoed.finished_at is not None and echoed.finished_at > pings_done, \
            'a worker was free before the pings were done: nothing was shown'
