"""WebSocket transport and the upgrade from polling, on every supported stack.

Checked from outside against the echo app (tests/apps/echo.py) with real
clients: websocket-client for frames, plain HTTP for polling, and
python-engineio's Client for a full client doing its own upgrade.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator

import engineio
import pytest
import websocket  # websocket-client

from tests.hostile.tools import RawWebSocket, close_code
from tests.live import (
    KINDS,
    LiveServer,
    PollingClient,
    decode_payload,
    expect_error,
    session_state,
    wait_for_session,
    wait_until,
    waiting_get,
)

GWS = ('pywsgi-gws', 'gunicorn-gws')  # the 101 is sent before the app runs


@pytest.fixture(scope='module', params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def server(kind: str, server_pool) -> LiveServer:
    return server_pool.get(kind, 'normal')


@pytest.fixture(scope='module', autouse=True)
def no_traceback_in_the_server_log(server: LiveServer) -> Iterator[None]:
    """After this module's tests: every WebSocket they used ended cleanly, and
    what the server can serve was said once, at its first request."""
    mark = len(server.log())
    yield
    PollingClient(server).handshake()   # at least one Engine.IO request was served
    assert server.wait_for_log('serving polling, websocket on')
    whole = server.log()
    ours = whole[mark:]
    assert 'Traceback' not in ours, ours[-8000:]
    assert 'HTTP/1.1 500' not in ours
    assert whole.count('serving polling, websocket on') == 1, server.log_tail(80)


@pytest.fixture(scope='module')
def small_server(kind: str, server_pool) -> LiveServer:
    """maxPayload 1,000 bytes."""
    return server_pool.get(kind, 'small-payload')


@pytest.fixture(scope='module')
def quick_upgrade_server(kind: str, server_pool) -> LiveServer:
    """upgrade_timeout 0.5 s."""
    return server_pool.get(kind, 'quick-upgrade')


def ws_url(server: LiveServer, sid: str | None = None, extra: str = '') -> str:
    url = f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket'
    if sid:
        url += '&sid=' + sid
    return url + ('&' + extra if extra else '')


@pytest.fixture
def connect(server: LiveServer) -> Iterator:
    opened: list[websocket.WebSocket] = []

    def open_ws(url: str | None = None, **kwargs) -> websocket.WebSocket:
        ws = websocket.create_connection(url or ws_url(server), timeout=5,
                                         enable_multithread=True, **kwargs)
        opened.append(ws)
        return ws
    yield open_ws
    for ws in opened:
        ws.close(timeout=0.5)


def recv(ws: websocket.WebSocket, timeout: float = 5.0, answer_pings: bool = True):
    """Next frame that is not a ping (answered with a pong)."""
    ws.settimeout(timeout)
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_TEXT:
            text = data.decode()
            if answer_pings and text == '2':
                ws.send('3')
                continue
            return text
        if opcode == websocket.ABNF.OPCODE_BINARY:
            return bytes(data)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionAbortedError('closed by the server')


def assert_closed(ws: websocket.WebSocket, timeout: float = 5.0) -> None:
    """The server closes the connection (close frame or EOF) within ``timeout``."""
    ws.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            opcode, _ = ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return
    pytest.fail('the server did not close the WebSocket')


def open_packet(ws: websocket.WebSocket) -> dict:
    first = recv(ws)
    assert first[0] == '0', first
    return json.loads(first[1:])


# -- WebSocket-only sessions -------------------------------------------------------

def test_websocket_only_session_opens_with_the_open_packet(connect):
    info = open_packet(connect())
    assert set(info) == {'sid', 'upgrades', 'pingInterval', 'pingTimeout', 'maxPayload'}
    assert info['upgrades'] == []
    assert (info['pingInterval'], info['pingTimeout']) == (1000, 1000)
    assert info['maxPayload'] == 1_000_000
    assert isinstance(info['sid'], str) and info['sid']


def test_echo_text_binary_and_base64_frames(connect):
    ws = connect()
    open_packet(ws)
    for text in ('hello', 'héllo 🎉', '{"looks": "like json"}', 'a\x1eb', ''):
        ws.send('4' + text)
        assert recv(ws) == '4' + text
    ws.send_binary(b'\x00\x01\xff')
    assert recv(ws) == b'\x00\x01\xff'
    ws.send('b' + base64.b64encode(b'\x02\x03').decode())  # forceBase64 clients
    assert recv(ws) == b'\x02\x03'


def test_b64_query_sends_binary_as_base64_text(connect, server):
    ws = connect(ws_url(server, extra='b64=1'))
    open_packet(ws)
    ws.send_binary(b'\x01\x02\x03')
    assert recv(ws) == 'bAQID'


def test_heartbeat_over_websocket(connect):
    ws = connect()
    open_packet(ws)
    started = time.monotonic()
    for _ in range(3):
        assert recv(ws, answer_pings=False) == '2'
        ws.send('3')
    # three pings, one interval (1 s) apart, and the session is still alive
    assert 2.5 < time.monotonic() - started < 4.5
    ws.send('4still here')
    assert recv(ws) == '4still here'


def test_no_pong_closes_the_websocket(server, connect):
    ws = connect()
    open_packet(ws)
    assert recv(ws, answer_pings=False) == '2'
    assert recv(ws, timeout=3, answer_pings=False) == '1'
    assert_closed(ws)


def test_client_close_packet_closes_the_socket(connect):
    ws = connect()
    open_packet(ws)
    ws.send('1')
    assert_closed(ws)


def test_server_disconnect_sends_close_then_closes(connect):
    ws = connect()
    open_packet(ws)
    ws.send('4before')
    assert recv(ws) == '4before'
    ws.send('4__disconnect')
    assert recv(ws) == '1'
    assert_closed(ws)


@pytest.mark.parametrize('frame', ['2', '0', '9', 'bnot-base64!', ''])
def test_bad_packets_close_the_session(connect, frame):
    ws = connect()
    open_packet(ws)
    ws.send(frame)
    assert recv(ws) == '1'
    assert_closed(ws)


def test_message_over_max_payload_closes_the_socket(small_server):
    ws = websocket.create_connection(ws_url(small_server), timeout=5)
    try:
        open_packet(ws)
        ws.send('4' + 'x' * 999)   # exactly 1,000 bytes: fine
        assert recv(ws) == '4' + 'x' * 999
        ws.send('4' + 'x' * 1000)
        assert_closed(ws)
    finally:
        ws.close(timeout=0.5)


def test_one_megabyte_message_arrives_intact_both_ways(connect):
    ws = connect()
    open_packet(ws)
    big = bytes(range(256)) * 3900   # 998,400 bytes
    ws.send_binary(big)
    assert recv(ws, timeout=20) == big
    text = '4' + 'é' * 499_000       # 998,001 bytes of UTF-8
    ws.send(text)
    assert recv(ws, timeout=20) == text


def test_websocket_handshake_from_a_foreign_origin_is_refused(server, kind):
    if kind in GWS:
        ws = websocket.create_connection(ws_url(server), timeout=5, origin='http://evil.example')
        assert_closed(ws)
        ws.close()
        return
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(ws_url(server), timeout=5, origin='http://evil.example')
    assert info.value.status_code == 403
    assert json.loads(info.value.resp_body)['code'] == 4


def test_websocket_for_an_unknown_sid_is_refused(server, kind):
    if kind in GWS:
        ws = websocket.create_connection(ws_url(server, sid='nope'), timeout=5)
        assert_closed(ws)
        ws.close()
        return
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(ws_url(server, sid='nope'), timeout=5)
    assert info.value.status_code == 400
    assert json.loads(info.value.resp_body)['code'] == 1


BAD_HANDSHAKE_QUERIES = [
    ('transport=websocket', 5),                # EIO missing
    ('EIO=abc&transport=websocket', 5),        # EIO not 4
    ('EIO=4', 0),                              # transport missing
    ('EIO=4&transport=abc', 0),                # transport unknown
]


@pytest.mark.parametrize(('query', 'code'), BAD_HANDSHAKE_QUERIES,
                         ids=[q for q, _ in BAD_HANDSHAKE_QUERIES])
def test_websocket_handshake_with_a_bad_eio_or_transport_is_refused(server, kind, query, code):
    """A real WebSocket handshake, refused by the query as a polling request
    would be: the HTTP error before any 101; with gevent-websocket (its 101 goes
    out before the app runs) a close frame at once and no Engine.IO packet.
    No session opens either way."""
    connects = server.log().count('echo: connect ')
    raw = RawWebSocket(server.port, query)
    try:
        if kind in GWS:
            assert raw.status == 101, raw.head
            frames, eof = raw.read_until_end(timeout=5)
            assert [f[0] for f in frames] == [0x8] and close_code(frames) == 1008, frames
            assert eof, 'the refused WebSocket stayed open'
        else:
            assert raw.status == 400, raw.head
            assert json.loads(raw.body())['code'] == code, raw.body()
    finally:
        raw.close()
    assert server.log().count('echo: connect ') == connects, 'a refused handshake opened a session'


# -- the upgrade ------------------------------------------------------------------

def start_upgrade(server: LiveServer, connect) -> tuple[PollingClient, websocket.WebSocket]:
    client = PollingClient(server)
    info = client.handshake()
    assert info['upgrades'] == ['websocket']
    ws = connect(ws_url(server, client.sid))
    return client, ws


def test_upgrade_exactly_as_the_protocol_says(server, connect):
    client, ws = start_upgrade(server, connect)
    # a GET waiting when the probe starts returns noop at once
    waiting = waiting_get(client, timeout=5)
    ws.send('2probe')
    assert recv(ws) == '3probe'
    resp = waiting.result(5)
    assert resp.status == 200 and decode_payload(resp.body) == [('6', '')], resp
    wait_for_session(server, client.sid, upgrading=True)
    client.send('__send 5')           # queued while upgrading: waits for the switch
    wait_until(lambda: session_state(server, client.sid)['queued'] >= 5, message='5 messages queued')
    # while upgrading, a new GET answers noop at once, with nothing of the queue
    started = time.monotonic()
    during = client.get(timeout=5)
    assert during.status == 200 and during.body == b'6', during
    assert time.monotonic() - started < 0.5
    ws.send('5')
    assert [recv(ws) for _ in range(5)] == [f'4m{i}' for i in range(5)]
    ws.send('4after')
    assert recv(ws) == '4after'   # so the server has handled the 5 before it
    # the session is now on WebSocket: polling is refused, the session lives on
    expect_error(client.get(timeout=5), 400, 3)
    ws.send('4still')
    assert recv(ws) == '4still'


def test_a_second_websocket_for_an_upgraded_session_is_closed_at_once(server, connect):
    """PROTOCOL.md (Upgrade): accepted (101) and closed at once, on every stack."""
    client, ws = start_upgrade(server, connect)
    ws.send('2probe')
    assert recv(ws) == '3probe'
    ws.send('5')
    ws.send('4switched')
    assert recv(ws) == '4switched'     # the upgrade is complete
    second = connect(ws_url(server, client.sid))
    assert_closed(second)
    ws.send('4first still works')
    assert recv(ws) == '4first still works'


def test_a_second_websocket_during_the_probe_is_closed_at_once(server, connect):
    client, ws = start_upgrade(server, connect)
    ws.send('2probe')
    assert recv(ws) == '3probe'
    second = connect(ws_url(server, client.sid))
    assert_closed(second)
    ws.send('5')
    ws.send('4first still works')
    assert recv(ws) == '4first still works'


def test_probe_close_leaves_the_session_on_polling(server, connect):
    client, ws = start_upgrade(server, connect)
    ws.send('2probe')
    assert recv(ws) == '3probe'
    ws.send('1')
    assert_closed(ws)
    client.send('back on polling')
    assert client.receive(1) == ['back on polling']
    client.close()


def test_upgrade_timeout_closes_the_probe_and_polling_goes_on(quick_upgrade_server, kind):
    client = PollingClient(quick_upgrade_server)
    client.handshake()
    ws = websocket.create_connection(ws_url(quick_upgrade_server, client.sid), timeout=5)
    try:
        ws.send('2probe')
        assert recv(ws) == '3probe'
        started = time.monotonic()
        assert_closed(ws, timeout=3)
        assert 0.3 < time.monotonic() - started < 2.0
        client.send('still polling')
        assert client.receive(1) == ['still polling']
    finally:
        ws.close(timeout=0.5)
        client.close()


def test_heartbeat_carries_on_across_the_upgrade(server, connect):
    client, ws = start_upgrade(server, connect)
    ws.send('2probe')
    assert recv(ws) == '3probe'
    ws.send('5')
    started = time.monotonic()
    for _ in range(2):
        assert recv(ws, answer_pings=False) == '2'
        ws.send('3')
    assert time.monotonic() - started < 3.5
    ws.send('4alive')
    assert recv(ws) == '4alive'


# -- nothing lost -----------------------------------------------------------------

COUNT = 500


def test_500_messages_each_way_across_the_upgrade(server, connect):
    """The client sends c0..c499 (echoed back) and the server sends m0..m499 while
    the session upgrades; each arrives exactly once and in order."""
    client, ws = start_upgrade(server, connect)
    client.send('__send 500')
    received: list[str] = []

    def take(packets) -> None:
        for p in packets:
            if p.type == '4':
                received.append(p.data)
            elif p.type == '2':
                client.pong()

    for i in range(0, COUNT // 2, 25):   # the first half over polling
        client.send(*[f'c{j}' for j in range(i, i + 25)])
        take(client.poll(timeout=5))
    ws.send('2probe')
    assert recv(ws) == '3probe'
    # polling stops: anything still queued waits for the switch
    while True:
        packets = client.poll(timeout=5)
        if [p.type for p in packets] == ['6']:
            break
        take(packets)
    ws.send('5')
    for i in range(COUNT // 2, COUNT, 25):   # the second half over WebSocket
        for j in range(i, i + 25):
            ws.send(f'4c{j}')
    deadline = time.monotonic() + 20
    while len(received) < 2 * COUNT and time.monotonic() < deadline:
        frame = recv(ws)
        assert isinstance(frame, str) and frame[0] == '4', frame
        received.append(frame[1:])
    echoes = [m for m in received if m.startswith('c')]
    sent = [m for m in received if m.startswith('m')]
    assert echoes == [f'c{i}' for i in range(COUNT)]
    assert sent == [f'm{i}' for i in range(COUNT)]
    assert len(received) == 2 * COUNT


def test_500_messages_with_python_engineio_client(server):
    """python-engineio's Client connects over polling and upgrades by itself
    while messages flow both ways."""
    client = engineio.Client(request_timeout=5)
    got: list[str] = []
    done = threading.Event()
    transports: list[str] = []

    @client.on('message')
    def on_message(data):
        got.append(data)
        if len(got) == 2 * COUNT:
            done.set()

    client.connect(server.url, transports=['polling', 'websocket'])
    try:
        client.send('__send 500')
        for i in range(COUNT):
            client.send(f'c{i}')
            if i == COUNT // 2:
                transports.append(client.transport())
        assert done.wait(30), f'{len(got)} of {2 * COUNT} messages arrived'
        transports.append(client.transport())
    finally:
        client.disconnect()
    assert [m for m in got if m.startswith('c')] == [f'c{i}' for i in range(COUNT)]
    assert [m for m in got if m.startswith('m')] == [f'm{i}' for i in range(COUNT)]
    assert transports[-1] == 'websocket'
