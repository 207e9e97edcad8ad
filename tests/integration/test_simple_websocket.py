"""WebSocket sessions with simple-websocket's ``Client`` as the peer, on every stack.

simple-websocket is built on wsproto, a WebSocket implementation independent
of the ``websockets`` core the server uses, and it is the WebSocket package
python-engineio and Flask-SocketIO users already have. Text, binary, 1 MB
messages and the close codes the server sends are checked with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import simple_websocket

from tests.live import KINDS, LiveServer, disconnect_reasons, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope='module', params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def server(kind: str, server_pool) -> LiveServer:
    """Ping interval and timeout 1 s."""
    return server_pool.get(kind, 'normal')


@pytest.fixture(scope='module')
def small_server(kind: str, server_pool) -> LiveServer:
    """maxPayload 1,000 bytes."""
    return server_pool.get(kind, 'small-payload')


Connect = Callable[..., tuple[simple_websocket.Client, str]]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Open a WebSocket-only session on a server: (client, sid)."""
    opened: list[simple_websocket.Client] = []

    def open_session(srv: LiveServer) -> tuple[simple_websocket.Client, str]:
        ws = simple_websocket.Client.connect(
            f'ws://127.0.0.1:{srv.port}/engine.io/?EIO=4&transport=websocket', max_message_size=2_000_000)
        opened.append(ws)
        first = ws.receive(timeout=5)
        assert isinstance(first, str) and first.startswith('0'), first
        return ws, json.loads(first[1:])['sid']
    yield open_session
    for ws in opened:
        if ws.connected:
            ws.close()


def receive(ws: simple_websocket.Client, timeout: float = 5.0) -> str | bytes:
    """The next message that is not an Engine.IO ping (answered with a pong)."""
    while True:
        data = ws.receive(timeout=timeout)
        assert data is not None, f'nothing within {timeout} s'
        if data == '2':
            pong(ws)
            continue
        return data


def pong(ws: simple_websocket.Client) -> None:
    """Answer a ping. The server may have closed the connection right after
    it (the ping, then the close packet and the close frame): the client then
    refuses to send, and what came after the ping is still there to receive."""
    try:
        ws.send('3')
    except simple_websocket.ConnectionClosed:
        pass


def closed_with(ws: simple_websocket.Client, timeout: float = 5.0) -> tuple[int, str | None]:
    """Read until the server closes; its close code and reason."""
    with pytest.raises(simple_websocket.ConnectionClosed):
        while True:
            data = ws.receive(timeout=timeout)
            assert data is not None, f'the server did not close within {timeout} s'
            if data == '2':
                pong(ws)
    return ws.close_reason, ws.close_message


def reason_of(srv: LiveServer, sid: str) -> list[str]:
    return wait_until(lambda: disconnect_reasons(srv, sid), message=f'disconnect of {sid}')


def test_text_messages(server: LiveServer, connect: Connect) -> None:
    ws, _ = connect(server)
    for text in ('hello', 'héllo 🎉', '', 'a\x1eb', '{"json": true}'):
        ws.send('4' + text)
        assert receive(ws) == '4' + text


def test_binary_messages(server: LiveServer, connect: Connect) -> None:
    ws, _ = connect(server)
    for data in (b'\x00\x01\xff', bytes(range(256)), b''):
        ws.send(data)
        assert receive(ws) == data


def test_one_megabyte_both_ways(server: LiveServer, connect: Connect) -> None:
    ws, _ = connect(server)
    big = bytes(range(256)) * 3900       # 998,400 bytes
    ws.send(big)
    assert receive(ws, timeout=20) == big
    text = '4' + 'é' * 499_000           # 998,001 bytes of UTF-8
    ws.send(text)
    assert receive(ws, timeout=20) == text


def test_server_disconnect_closes_with_1000(server: LiveServer, connect: Connect) -> None:
    ws, sid = connect(server)
    ws.send('4__disconnect')
    assert receive(ws) == '1'
    assert closed_with(ws)[0] == 1000
    assert reason_of(server, sid) == ['server disconnect']


def test_close_packet_from_the_client_closes_with_1000(server: LiveServer, connect: Connect) -> None:
    ws, sid = connect(server)
    ws.send('1')
    assert closed_with(ws)[0] == 1000
    assert reason_of(server, sid) == ['client disconnect']


def test_bad_packet_closes_with_1000_after_the_close_packet(server: LiveServer, connect: Connect) -> None:
    ws, sid = connect(server)
    ws.send('9nonsense')
    assert receive(ws) == '1'
    assert closed_with(ws)[0] == 1000
    assert reason_of(server, sid) == ['parse error']


def test_no_pong_closes_with_1000_after_the_close_packet(server: LiveServer, connect: Connect) -> None:
    ws, sid = connect(server)
    assert ws.receive(timeout=5) == '2'
    assert ws.receive(timeout=5) == '1'     # ping timeout 1 s after the ping
    assert closed_with(ws)[0] == 1000
    assert reason_of(server, sid) == ['ping timeout']


def test_message_over_max_payload_closes_with_1009(small_server: LiveServer, connect: Connect) -> None:
    ws, sid = connect(small_server)
    ws.send('4' + 'x' * 999)       # exactly 1,000 bytes: fine
    assert receive(ws) == '4' + 'x' * 999
    ws.send('4' + 'x' * 1000)
    assert closed_with(ws)[0] == 1009
    assert reason_of(small_server, sid) == ['payload too large']


@pytest.mark.parametrize('code', [1000, 1001, 3000, 4999])
def test_client_close_code_ends_the_session(server: LiveServer, connect: Connect, code: int) -> None:
    ws, sid = connect(server)
    ws.send('4before')
    assert receive(ws) == '4before'
    ws.close(code, 'bye')
    assert reason_of(server, sid) == ['transport close']
