"""Edges of the upgrade to WebSocket, on all six stacks, checked on the wire.

- A second WebSocket for a session that is upgrading or upgraded is accepted
  (101) and closed at once; the first keeps working (PROTOCOL.md "Upgrade").
- The probe socket before ``5``: what each client packet does (PROTOCOL.md,
  third column of "What each client packet does"); after a closed probe the
  session carries on over polling. ``5`` completes the upgrade, also without
  ``2probe`` before it (as the reference server does).

Raw sockets on the client side (tests/hostile/tools.py ``RawWebSocket``), so
that the exact status line, frames and end of the connection are seen.
"""

from __future__ import annotations

import json

import pytest

from tests.hostile.tools import RawWebSocket, close_code, ws_frame
from tests.live import KINDS, LiveServer, PollingClient, expect_error


@pytest.fixture(scope='module', params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def server(kind: str, server_pool) -> LiveServer:
    return server_pool.get(kind, 'normal')


def ws_query(sid: str | None = None) -> str:
    return 'EIO=4&transport=websocket' + (f'&sid={sid}' if sid else '')


def text_frame(raw: RawWebSocket, timeout: float = 5.0) -> str:
    """The next text frame from the server; pings are answered."""
    raw.sock.settimeout(timeout)
    while True:
        frame = raw.read_frame()
        assert frame is not None, 'connection ended while a frame was expected'
        opcode, payload = frame
        assert opcode == 0x1, f'expected a text frame, got {frame!r}'
        if payload == b'2':
            raw.send_text('3')
            continue
        return payload.decode()


def assert_closed_at_once(raw: RawWebSocket, timeout: float = 5.0) -> None:
    """The server ends the connection: a close frame (1008) and then EOF,
    with no Engine.IO packet before it."""
    frames, eof = raw.read_until_end(timeout)
    assert frames and frames[-1][0] == 0x8, f'no close frame: {frames!r}'
    assert close_code(frames) == 1008, frames
    assert [f for f in frames if f[0] != 0x8] == [], frames
    assert eof, 'the connection stayed open after the close frame'


def echo_on(raw: RawWebSocket, text: str) -> None:
    raw.send_text('4' + text)
    assert text_frame(raw) == '4' + text


@pytest.fixture
def polling(server: LiveServer):
    c = PollingClient(server)
    info = c.handshake()
    assert info['upgrades'] == ['websocket']
    yield c
    c.close()


@pytest.fixture
def sockets():
    opened: list[RawWebSocket] = []
    yield opened
    for raw in opened:
        raw.close()


def connect(server: LiveServer, sockets: list[RawWebSocket], sid: str | None = None,
            ) -> RawWebSocket:
    raw = RawWebSocket(server.port, ws_query(sid))
    sockets.append(raw)
    return raw


# -- a second WebSocket for the same session ---------------------------------------

@pytest.mark.parametrize('stage', ['reserved', 'probing', 'upgraded'])
def test_second_websocket_is_accepted_then_closed_and_the_first_works(
        server, polling, sockets, stage):
    first = connect(server, sockets, polling.sid)
    assert first.status == 101, first.head
    if stage in ('probing', 'upgraded'):
        first.send_text('2probe')
        assert text_frame(first) == '3probe'
    if stage == 'upgraded':
        first.send_text('5')
        echo_on(first, 'upgraded')      # the 5 was handled before this echo
    second = connect(server, sockets, polling.sid)
    assert second.status == 101, second.head
    assert_closed_at_once(second)
    if stage == 'reserved':
        first.send_text('2probe')
        assert text_frame(first) == '3probe'
    if stage != 'upgraded':
        first.send_text('5')
    echo_on(first, 'first still works')
    expect_error(polling.get(timeout=5), 400, 3)   # the session is on WebSocket now
    echo_on(first, 'and still')


def test_second_websocket_for_a_websocket_only_session(server, sockets):
    first = connect(server, sockets)
    assert first.status == 101
    opened = text_frame(first)
    assert opened[0] == '0'
    sid = json.loads(opened[1:])['sid']
    second = connect(server, sockets, sid)
    assert second.status == 101, second.head
    assert_closed_at_once(second)
    echo_on(first, 'first still works')


# -- the probe socket before "5" ---------------------------------------------------

def probing(server: LiveServer, sockets: list[RawWebSocket], sid: str) -> RawWebSocket:
    raw = connect(server, sockets, sid)
    assert raw.status == 101, raw.head
    raw.send_text('2probe')
    assert text_frame(raw) == '3probe'
    return raw


def polling_goes_on(polling: PollingClient, token: str) -> None:
    polling.send(token)
    assert polling.receive(1) == [token]


@pytest.mark.parametrize('frame', [
    ws_frame(0x1, b'4a message'),
    ws_frame(0x2, b'\x00\x01'),            # a binary message
    ws_frame(0x1, b'3'),
    ws_frame(0x1, b'3probe'),
    ws_frame(0x1, b'6'),
], ids=['message', 'binary', 'pong', 'pong-probe', 'noop'])
def test_ignored_on_the_probe(server, polling, sockets, frame):
    raw = probing(server, sockets, polling.sid)
    raw.send_raw(frame)
    raw.send_text('5')
    echo_on(raw, 'upgraded after an ignored packet')
    expect_error(polling.get(timeout=5), 400, 3)


@pytest.mark.parametrize('frame', [
    ws_frame(0x1, b'2'),
    ws_frame(0x1, b'2ping'),
    ws_frame(0x1, b'2probe'),              # a second probe
    ws_frame(0x1, b'1'),
    ws_frame(0x1, b'0'),
    ws_frame(0x1, b'7'),
    ws_frame(0x1, b'x'),
    ws_frame(0x1, b''),
    ws_frame(0x1, b'bnot base64!'),
], ids=['ping', 'ping-data', 'second-probe', 'close', 'open', 'unknown-digit',
        'unknown-letter', 'empty', 'bad-base64'])
def test_closes_the_probe_and_polling_goes_on(server, polling, sockets, frame):
    raw = probing(server, sockets, polling.sid)
    raw.send_raw(frame)
    frames, eof = raw.read_until_end(timeout=5)
    assert [f for f in frames if f[0] != 0x8] == [], frames   # no Engine.IO packet
    assert eof, 'the probe socket stayed open'
    polling_goes_on(polling, 'still on polling')
    # and the session can still upgrade with a new probe
    again = probing(server, sockets, polling.sid)
    again.send_text('5')
    echo_on(again, 'upgraded on the second try')


def test_upgrade_packet_without_a_probe_completes_the_upgrade(server, polling, sockets):
    raw = connect(server, sockets, polling.sid)
    assert raw.status == 101
    raw.send_text('5')
    echo_on(raw, 'upgraded without a probe')
    expect_error(polling.get(timeout=5), 400, 3)


def test_upgrade_packet_sent_right_behind_the_probe(server, polling, sockets):
    """A client need not wait for ``3probe`` before it sends ``5``: ``2probe``,
    ``5`` and a message in one write. The probe is answered first, then the
    message, on the WebSocket; polling is refused from then on."""
    raw = connect(server, sockets, polling.sid)
    assert raw.status == 101, raw.head
    raw.send_raw(ws_frame(0x1, b'2probe') + ws_frame(0x1, b'5') + ws_frame(0x1, b'4right behind'))
    assert text_frame(raw) == '3probe'
    assert text_frame(raw) == '4right behind'
    expect_error(polling.get(timeout=5), 400, 3)
    echo_on(raw, 'still on the websocket')


def test_probe_closed_before_2probe_leaves_the_session_on_polling(server, polling, sockets):
    raw = connect(server, sockets, polling.sid)
    assert raw.status == 101
    raw.send_text('1')
    frames, eof = raw.read_until_end(timeout=5)
    assert [f for f in frames if f[0] != 0x8] == [] and eof, frames
    polling_goes_on(polling, 'never upgraded')


def test_a_server_disconnect_while_upgrading_reaches_the_client_on_the_websocket(
        server, polling, sockets):
    """The client switches to the WebSocket when it sends 5: the close packet
    of a disconnect() that came during the probe must reach it there (on
    polling it would never be fetched, and the client would reconnect)."""
    raw = probing(server, sockets, polling.sid)
    polling.send('__disconnect')           # disconnect() from inside the handler
    polling.expect_reason('server disconnect')
    raw.send_text('5')
    assert text_frame(raw) == '1'
    frames, eof = raw.read_until_end(5)
    assert [f[0] for f in frames] == [0x8] and close_code(frames) == 1000, frames
    assert eof
