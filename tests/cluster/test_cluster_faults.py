"""Faults of a cluster behind round-robin nginx (three one-worker gunicorns,
tests/cluster/topology.py): a worker killed with SIGKILL, and Redis away for
10 s. Each test has a cluster of its own (it breaks it)."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import engineio  # type: ignore[import-untyped]
import pytest
import socketio

from tests.cluster.topology import Cluster, owner, running_cluster
from tests.live import (
    Background,
    Packet,
    PollingClient,
    expect_error,
    http_request,
    session_state,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)

#: a heartbeat far longer than the second a dead owner may take to be noticed
SLOW_PING = {'EIO_PING_INTERVAL': '5', 'EIO_PING_TIMEOUT': '5'}


# -- a worker killed with SIGKILL --------------------------------------------------


class Reconnecting:
    """python-socketio's Client with reconnection on: records every engine sid."""

    def __init__(self, url: str, transports: list[str] | None) -> None:
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.1,
                                      reconnection_delay_max=0.5, randomization_factor=0)
        self.transports = transports
        self.sids: list[str] = []
        self.disconnects = 0
        self.client.on('connect', lambda: self.sids.append(self.client.eio.sid))
        self.client.on('disconnect', self._disconnected)
        self.client.connect(url, transports=transports, wait_timeout=15)
        wait_until(lambda: self.sids, 5, message='the connect event')

    def _disconnected(self, *reason: Any) -> None:
        self.disconnects += 1

    def echo(self, text: str) -> Any:
        return self.client.call('echo', text, timeout=10)


@pytest.fixture
def sio_cluster() -> Iterator[Cluster]:
    with running_cluster('three-servers', app='tests.apps.cluster_sio:app',
                         env=SLOW_PING) as running:
        yield running


def test_a_killed_worker(sio_cluster: Cluster) -> None:
    """Its clients reconnect to a live worker, WebSocket clients of the other
    workers notice nothing, and requests for its sessions get 400 code 1
    within a second on every other process (not after a ping timeout: 10 s
    here). A polling or upgraded client of another worker whose request
    nginx had given to the killed one at that moment loses that request (a
    502, or its relayed WebSocket closes) and reconnects too: the test does
    not steer nginx, so for them it checks only that they work afterwards
    (test_a_poll_waiting_on_a_killed_worker checks the session itself)."""
    cluster = sio_cluster
    clients = [Reconnecting(cluster.url, t) for t in
               (['polling'], ['websocket'], None, ['polling'], ['websocket'], None)]
    try:
        victim_node = owner(clients[0].sids[0])
        victim_server, victim_pid = cluster.nodes[victim_node]
        assert victim_pid, cluster.nodes
        victims = [c for c in clients if owner(c.sids[0]) == victim_node]
        others = [c for c in clients if c not in victims]
        assert others, 'round robin: six clients over three processes'
        # a raw polling session of the victim, with its sid
        raw = PollingClient(cluster.front.port, path='/socket.io/')
        deadline = time.monotonic() + 20
        while True:
            raw.handshake()
            if owner(raw.sid) == victim_node:
                break
            raw.close()
            assert time.monotonic() < deadline, 'no session opened on the victim'
        live_ports = [s.port for s in cluster.servers if s is not victim_server]

        os.kill(victim_pid, signal.SIGKILL)
        killed = time.monotonic()
        # the first request may reach Redis before Redis saw the dead process's
        # connection close: then the owner's silence (about a second) decides
        expect_error(http_request(live_ports[0], 'GET', raw.target(), timeout=10), 400, 1)
        assert time.monotonic() - killed < 1.5, f'{time.monotonic() - killed:.2f} s'
        for port in live_ports:     # from then on at once, on every live process
            started = time.monotonic()
            expect_error(http_request(port, 'GET', raw.target(), timeout=10), 400, 1)
            assert time.monotonic() - started < 0.5, f'{time.monotonic() - started:.2f} s'

        for c in victims:
            wait_until(lambda c=c: len(c.sids) >= 2, timeout=15,
                       message='a client of the killed worker reconnected')
            assert owner(c.sids[-1]) != victim_node
            assert c.echo('after the kill') == 'after the kill'
        for c in others:
            if c.transports == ['websocket']:
                assert c.echo('unaffected') == 'unaffected'
                assert (len(c.sids), c.disconnects) == (1, 0)
            else:
                wait_until(lambda c=c: c.client.connected, timeout=15,
                           message='a client of a live worker connected')
                assert owner(c.sids[-1]) != victim_node
                assert c.echo('still served') == 'still served'
    finally:
        for c in clients:
            c.client.disconnect()


def test_a_poll_waiting_on_a_killed_worker(echo_cluster: Cluster) -> None:
    """A session of worker A whose long-poll GET worker B serves for it when B
    is killed: that GET fails with B, the session lives on at A, and the next
    GET on the third worker is served (the read slot B held is free again),
    in order, nothing lost."""
    cluster = echo_cluster
    a, b, c = cluster.servers
    [b_pid] = cluster.workers(b)
    client = PollingClient(a.port, timeout=10)
    client.handshake()
    assert owner(client.sid) == cluster.node_of(a.port)
    client.send('before')
    assert client.receive(1) == ['before']
    on_b = PollingClient(b.port, timeout=10)
    on_b.sid = client.sid
    waiting = Background(on_b.get)
    wait_until(lambda: session_state(a.port, client.sid)['get_waiting'], timeout=5,
               message='the GET on B waiting at the owner')
    os.kill(b_pid, signal.SIGKILL)
    with pytest.raises(OSError):
        waiting.result(10)
    other = PollingClient(c.port, timeout=10)
    other.sid = client.sid
    other.send('after 1', 'after 2')
    assert other.receive(2, timeout=10) == ['after 1', 'after 2']
    assert session_state(a.port, client.sid)['exists'] is True


# -- Redis away for 10 s ------------------------------------------------------------


class WsClient:
    """python-engineio's Client, WebSocket only: on the process that owns it."""

    def __init__(self, url: str) -> None:
        self.client = engineio.Client(handle_sigint=False, request_timeout=10)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.disconnected = threading.Event()
        self.client.on('message', self.messages.put)
        self.client.on('disconnect', lambda *reason: self.disconnected.set())
        self.client.connect(url, transports=['websocket'])
        self.sid: str = self.client.sid

    def echo(self, text: str, timeout: float = 5.0) -> Any:
        self.client.send(text)
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f'{text!r} did not come back within {timeout} s') from None


@pytest.fixture
def echo_cluster() -> Iterator[Cluster]:
    with running_cluster('three-servers', env={'EIO_PING_INTERVAL': '1',
                                               'EIO_PING_TIMEOUT': '1'}) as running:
        yield running


def polling_echo(cluster: Cluster, texts: list[str]) -> list[str]:
    client = PollingClient(cluster.front.port, timeout=5)
    client.handshake()
    client.send(*texts)
    got = client.receive(len(texts))
    client.close()
    return got  # type: ignore[return-value]


def test_redis_away_for_10_seconds(echo_cluster: Cluster) -> None:
    """No worker crashes or hangs; WebSocket clients on their owner keep
    echoing through heartbeats; an Emitter says ClusterUnavailable and a
    request that needs another process gets 503 code 3 at once; once Redis is
    back the cluster serves forwarded requests again by itself."""
    from engineio_wsgi.cluster import ClusterUnavailable, Emitter
    cluster = echo_cluster
    pids = {s.port: cluster.workers(s) for s in cluster.servers}
    clients = [WsClient(cluster.url) for _ in range(3)]
    try:
        # round robin hands out requests: other clients' requests may go between
        # these connections, so open them until every process owns one (bounded)
        while len({owner(c.sid) for c in clients}) < 3 and len(clients) < 15:
            clients.append(WsClient(cluster.url))
        assert len({owner(c.sid) for c in clients}) == 3
        assert polling_echo(cluster, ['before']) == ['before']
        a, b = cluster.servers[:2]
        stranded = PollingClient(a.port, timeout=5)     # a session of A, asked on B below
        stranded.handshake()

        cluster.redis.stop()
        away = time.monotonic()
        started = time.monotonic()
        with pytest.raises(ClusterUnavailable):
            Emitter(cluster.redis.url).send(clients[0].sid, 'nobody takes this')
        assert time.monotonic() - started < 3.0
        # a request that needs another process fails at once: 503 code 3
        on_b = PollingClient(b.port, timeout=10)
        on_b.sid = stranded.sid
        started = time.monotonic()
        expect_error(on_b.post(Packet.message('x')), 503, 3)
        expect_error(on_b.get(), 503, 3)
        assert time.monotonic() - started < 3.0
        n = 0
        while time.monotonic() - away < 10.0:
            for c in clients:
                assert c.echo(f'during {n}') == f'during {n}'
                assert not c.disconnected.is_set()
            for server in cluster.servers:      # every process answers at once
                resp = http_request(server.port, 'GET', '/__sessions', timeout=2)
                assert resp.status == 200, resp
            n += 1
        assert n >= 5
        cluster.redis.start()

        wait_until(lambda: _echoes(cluster), timeout=15,
                   message='a polling session served across processes after Redis came back')
        for _ in range(3):
            assert polling_echo(cluster, ['x', 'y', 'z']) == ['x', 'y', 'z']
        for c in clients:
            assert c.echo('after') == 'after'
            assert not c.disconnected.is_set()
        sent = Emitter(cluster.redis.url).send(clients[1].sid, 'from the emitter')
        assert sent is True
        assert clients[1].messages.get(timeout=5) == 'from the emitter'
        assert {s.port: cluster.workers(s) for s in cluster.servers} == pids, 'a worker restarted'
        assert 'Traceback' not in cluster.log(), cluster.diagnostics()
    finally:
        for c in clients:
            if c.client.state == 'connected':
                c.client.disconnect()


def _echoes(cluster: Cluster) -> bool:
    try:
        return polling_echo(cluster, ['back']) == ['back']
    except (AssertionError, OSError):
        return False
