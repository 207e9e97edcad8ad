"""Real clients through one nginx balancing every request round robin (no
stickiness) over a cluster of processes sharing sessions on Redis
(``Server(cluster=...)``, tests/apps/cluster_echo.py), in both layouts of
tests/cluster/topology.py: three one-worker gunicorns (gevent, gevent,
gthread), and one gunicorn with three gevent workers on one port.

Every polling request of a session lands on the next process, so most of them
are served for the owner by another process; a WebSocket (upgrade or not)
lands on any process. Clients: raw HTTP, engine.io-client 6 in Node (polling,
polling then upgrade, WebSocket only), python-engineio's ``Client``, and the
500-messages-each-way upgrade with the server side sent by an ``Emitter``.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import engineio  # type: ignore[import-untyped]
import pytest
import websocket  # websocket-client

from tests.cluster.topology import LAYOUTS, Cluster, no_tracebacks, owner, running_cluster
from tests.interop.test_node_client import BATCH, BINARIES, TEXTS
from tests.interop.test_python_client import as_received
from tests.interop.tools import run_node_script
from tests.live import (
    CLOSE,
    Background,
    Packet,
    PollingClient,
    SessionClosed,
    expect_error,
    http_request,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope='module', params=list(LAYOUTS))
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(request.param) as running:
        yield running
        no_tracebacks(running)


def test_every_process_serves_requests_through_the_front(cluster: Cluster) -> None:
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while seen != set(cluster.nodes) and time.monotonic() < deadline:
        resp = http_request(cluster.front.port, 'GET', '/__node', timeout=5)
        assert resp.status == 200, resp
        seen.add(resp.body.decode())
    assert seen == set(cluster.nodes), (seen, cluster.nodes)


# -- raw long-polling -------------------------------------------------------------


def test_a_fresh_cluster_serves_many_sessions_from_its_first_requests(cluster: Cluster) -> None:
    """The cluster's first Engine.IO requests (this test runs first on a new
    cluster): 30 polling sessions at once, each request going to the next
    process, so that many processes serve their first requests for other
    processes' sessions while they are still joining the cluster. Every
    session echoes."""
    def session(n: int) -> list[str | bytes]:
        client = PollingClient(cluster.front.port)
        client.handshake()
        client.send(f'{n}-a', f'{n}-b')
        got = client.receive(2, timeout=10)
        client.send(f'{n}-c')
        return got + client.receive(1, timeout=10)
    runs = [Background(session, n) for n in range(30)]
    for n, run in enumerate(runs):
        assert run.result(30) == [f'{n}-a', f'{n}-b', f'{n}-c']


def test_polling_session_across_processes(cluster: Cluster) -> None:
    """Each request of one session goes to the next process: the messages come
    back in order, ``whoami`` names the owner the sid names, and the server's
    close reaches the client; afterwards the sid is unknown everywhere."""
    client = PollingClient(cluster.front.port)
    client.handshake()
    assert owner(client.sid) in cluster.nodes
    for i in range(9):
        client.send(f'm{i}')
        assert client.receive(1) == [f'm{i}']
    client.send('a', 'b', 'c')
    assert client.receive(3) == ['a', 'b', 'c']
    client.send('whoami')
    assert client.receive(1) == [owner(client.sid)]
    client.send('close')
    with pytest.raises(SessionClosed):
        client.receive(1)
    for server in cluster.servers:      # every process, the owner included
        expect_error(http_request(server.port, 'GET', client.target(), timeout=5), 400, 1)


def test_sessions_are_owned_by_every_process(cluster: Cluster) -> None:
    """Handshakes spread over the processes: each owns some sessions."""
    owners: set[str] = set()
    deadline = time.monotonic() + 20
    while owners != set(cluster.nodes) and time.monotonic() < deadline:
        client = PollingClient(cluster.front.port)
        client.handshake()
        owners.add(owner(client.sid))
        client.close()
    assert owners == set(cluster.nodes)


# -- engine.io-client in Node -----------------------------------------------------

MODES = {
    'polling': {'transports': ['polling'], 'upgrade': False},
    'websocket': {'transports': ['websocket'], 'upgrade': False},
    'default': {'transports': ['polling', 'websocket'], 'upgrade': True},
}
#: per mode, this many sessions of each case at once: they are owned by
#: different processes
COPIES = 2


def text(value: str) -> dict[str, Any]:
    return {'text': value}


def binary(value: bytes) -> dict[str, Any]:
    return {'binary': base64.b64encode(value).decode('ascii')}


def node_cases(url: str) -> list[dict[str, Any]]:
    cases = []
    for mode, options in MODES.items():
        common = {**options, 'url': url, 'wait_upgrade': mode == 'default', 'timeout_ms': 20000,
                  'close_message': 'close'}
        for copy in range(COPIES):
            tag = f'{mode}/{copy}'
            cases += [
                {**common, 'name': f'{tag}/text', 'send': [text(t) for t in TEXTS],
                 'expect': len(TEXTS)},
                {**common, 'name': f'{tag}/binary', 'expect': len(BINARIES),
                 'send': [binary(b) for b in BINARIES]},
                {**common, 'name': f'{tag}/batch', 'send_when': 'opening',
                 'send': [text(t) for t in BATCH], 'expect': len(BATCH)},
                {**common, 'name': f'{tag}/server-close', 'send': [text('hello')], 'expect': 1,
                 'close': 'server'},
            ]
            if mode == 'default':
                cases.append({**common, 'name': f'{tag}/after-upgrade', 'send_when': 'upgraded',
                              'send': [text(f'on the WebSocket {i}') for i in range(20)],
                              'expect': 20})
    return cases


@pytest.fixture(scope='module')
def node_report(cluster: Cluster) -> dict[str, dict[str, Any]]:
    out = run_node_script('node_client.mjs', {'cases': node_cases(cluster.url)}, timeout=90)
    return {case['name']: case for case in out['cases']}


def node_texts(case: dict[str, Any]) -> list[str]:
    return ['' if m['kind'] == 'undefined' else m.get('data') for m in case['received']]


@pytest.mark.parametrize('mode', list(MODES))
def test_node_client(cluster: Cluster, node_report: dict[str, dict[str, Any]], mode: str) -> None:
    cases = {name: case for name, case in node_report.items() if name.startswith(mode + '/')}
    for name, case in cases.items():
        assert case['error'] is None, f'{name}: {case["error"]}\n{case["events"]}'
        want = 'polling' if mode == 'polling' else 'websocket'
        assert case['transport_at_open'] == ('websocket' if mode == 'websocket' else 'polling'), name
        assert case['transport_final'] == want, name
        if mode == 'default':
            assert case['upgrade_ms'] is not None, f'{name}: no upgrade: {case["events"]}'
        kind = name.split('/')[-1]
        if kind == 'text':
            assert node_texts(case) == TEXTS, name
        elif kind == 'binary':
            got = [base64.b64decode(m.get('b64', '')) for m in case['received']]
            assert [m['kind'] for m in case['received']] == ['binary'] * len(BINARIES), name
            assert got == BINARIES, name
        elif kind == 'batch':
            assert node_texts(case) == BATCH, name
        elif kind == 'server-close':
            assert node_texts(case) == ['hello'], name
            assert case['close_reason'] == 'transport close', (name, case['events'])
        elif kind == 'after-upgrade':
            assert node_texts(case) == [f'on the WebSocket {i}' for i in range(20)], name
    owners = {owner(case['sid']) for case in cases.values()}
    assert owners <= set(cluster.nodes)
    if cluster.layout == 'three-servers':
        # handshakes go round robin: sessions opened at once have several owners
        assert len(owners) >= 2, owners


# -- python-engineio's Client -----------------------------------------------------

PY_MODES = {'polling': ['polling'], 'websocket': ['websocket'], 'default': ['polling', 'websocket']}


class PyClient:
    def __init__(self, url: str, transports: list[str]) -> None:
        self.client = engineio.Client(handle_sigint=False, request_timeout=10)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.disconnected = threading.Event()
        self.client.on('message', self.messages.put)
        self.client.on('disconnect', lambda *reason: self.disconnected.set())
        self.client.connect(url, transports=transports)
        self.sid: str = self.client.sid

    def echo(self, *messages: Any, timeout: float = 15.0) -> list[Any]:
        for message in messages:
            self.client.send(message)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < len(messages):
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f'{len(got)} of {len(messages)} messages came back') from None
        return got


@pytest.mark.parametrize('mode', list(PY_MODES))
def test_python_engineio_client(cluster: Cluster, mode: str) -> None:
    clients = [PyClient(cluster.url, PY_MODES[mode]) for _ in range(3)]
    try:
        if cluster.layout == 'three-servers':
            # round robin hands out requests, not handshakes: a client's own
            # requests go between the handshakes, so open clients until every
            # process owns one (a bounded number)
            while len({owner(c.sid) for c in clients}) < 3 and len(clients) < 15:
                clients.append(PyClient(cluster.url, PY_MODES[mode]))
        for c in clients:
            assert c.client.transport() == ('polling' if mode == 'polling' else 'websocket')
            assert c.echo(*TEXTS) == [as_received(t) for t in TEXTS]
            assert c.echo(*BINARIES) == BINARIES
            assert c.echo(*BATCH) == BATCH
            assert c.echo('whoami') == [owner(c.sid)]
        if cluster.layout == 'three-servers':
            assert len({owner(c.sid) for c in clients}) == 3
        closing = clients.pop()
        closing.client.send('close')
        assert closing.disconnected.wait(10), 'the server close did not reach the client'
        for c in clients:       # the others live on
            assert c.echo('still here') == ['still here']
    finally:
        for c in clients:
            if c.client.state == 'connected':
                c.client.disconnect()


# -- 500 messages each way across the upgrade ------------------------------------

COUNT = 500


def recv(ws: websocket.WebSocket, timeout: float = 10.0) -> str | bytes:
    """The next frame that is not a ping (pings are answered)."""
    ws.settimeout(timeout)
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frame = data.decode()
            if frame == '2':
                ws.send('3')
                continue
            return frame
        if opcode == websocket.ABNF.OPCODE_BINARY:
            return bytes(data)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionAbortedError('closed by the server')


def test_500_messages_each_way_across_the_upgrade(cluster: Cluster) -> None:
    """The client sends c0..c499 (echoed back); an Emitter in this process sends
    m0..m499 while the session upgrades; the polling requests and the WebSocket
    land on whichever process nginx picks. Each message arrives once, in order."""
    from engineio_wsgi.cluster import Emitter
    emitter = Emitter(cluster.redis.url)
    client = PollingClient(cluster.front.port)
    client.handshake()
    ws = websocket.create_connection(
        f'{cluster.ws_url}/engine.io/?EIO=4&transport=websocket&sid={client.sid}', timeout=10)
    received: list[str] = []
    emitted: list[bool] = []
    sender = threading.Thread(
        target=lambda: emitted.extend(emitter.send(client.sid, f'm{i}') for i in range(COUNT)))
    sender.start()
    try:
        def take(packets: list[Any]) -> None:
            for p in packets:
                if p.type == '4':
                    received.append(p.data)
                elif p.type == '2':
                    client.pong()

        for i in range(0, COUNT // 2, 25):      # the first half over polling
            client.send(*[f'c{j}' for j in range(i, i + 25)])
            take(client.poll(timeout=10))
        ws.send('2probe')
        assert recv(ws) == '3probe'
        while True:         # polling stops; anything still queued waits for the switch
            packets = client.poll(timeout=10)
            if [p.type for p in packets] == ['6']:
                break
            take(packets)
        ws.send('5')
        for j in range(COUNT // 2, COUNT):      # the second half over the WebSocket
            ws.send(f'4c{j}')
        deadline = time.monotonic() + 30
        while len(received) < 2 * COUNT and time.monotonic() < deadline:
            frame = recv(ws)
            assert isinstance(frame, str) and frame[0] == '4', frame
            received.append(frame[1:])
    finally:
        sender.join(30)
        ws.close(timeout=1)
    assert emitted == [True] * COUNT
    assert [m for m in received if m.startswith('c')] == [f'c{i}' for i in range(COUNT)]
    assert [m for m in received if m.startswith('m')] == [f'm{i}' for i in range(COUNT)]
    assert len(received) == 2 * COUNT


def test_the_close_packet_of_a_polling_client_ends_the_session_everywhere(cluster: Cluster) -> None:
    client = PollingClient(cluster.front.port)
    client.handshake()
    client.send('x')
    assert client.receive(1) == ['x']
    client.post_ok(Packet(CLOSE))
    for server in cluster.servers:      # every process, the owner included
        wait_until(lambda port=server.port: http_request(port, 'GET', client.target()).status == 400,
                   timeout=2, message=f'the session closed on port {server.port}')
        expect_error(http_request(server.port, 'GET', client.target(), timeout=5), 400, 1)
