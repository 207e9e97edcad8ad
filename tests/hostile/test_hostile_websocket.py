"""Hostile WebSocket input: bad handshakes, garbage and oversized frames, bad
Engine.IO packets, and sockets for sids that cannot take one. The server ends
the offending connection (with the close code RFC 6455 gives, where it writes
one) and nothing else; the ``bystanders`` prove it.
"""

from __future__ import annotations

import json
import struct

import pytest

from tests.hostile.tools import (
    Bystanders,
    RawWebSocket,
    close_code,
    open_websocket,
    stats,
    ws_frame,
)
from tests.live import PollingClient, disconnect_reasons, expect_error, http_request, wait_until

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def open_raw(server) -> tuple[RawWebSocket, str]:
    raw = RawWebSocket(server.port)
    assert raw.status == 101, raw.head
    frame = raw.read_frame()
    assert frame is not None and frame[0] == TEXT and frame[1].startswith(b'0'), frame
    return raw, json.loads(frame[1][1:])['sid']


def ended_with(raw: RawWebSocket, code: int, timeout: float = 6.0) -> list:
    """The server sent a close frame with ``code``, then closed the connection."""
    frames, eof = raw.read_until_end(timeout)
    assert eof, f'connection still open after {timeout} s; frames: {frames[:5]}'
    assert close_code(frames) == code, f'expected close code {code}; frames: {frames[:5]}'
    return frames


# -- frames ----------------------------------------------------------------

# close code, and the reason the session ends with: a frame-level violation ends
# the WebSocket ('transport close'); a frame over maxPayload is 'payload too large'
CLOSED, TOO_BIG = 'transport close', 'payload too large'
GARBAGE = {
    'reserved opcode 3': (ws_frame(0x3, b'x'), 1002, CLOSED),
    'reserved opcode 11': (ws_frame(0xB, b'x'), 1002, CLOSED),
    'unmasked frame': (ws_frame(TEXT, b'4x', mask=False), 1002, CLOSED),
    'rsv bits': (ws_frame(TEXT, b'4x', rsv=0b111), 1002, CLOSED),
    'fragmented ping': (ws_frame(PING, b'x', fin=False), 1002, CLOSED),
    'control frame over 125 bytes': (ws_frame(PING, b'x' * 200), 1002, CLOSED),
    'continuation without a start': (ws_frame(CONT, b'4x'), 1002, CLOSED),
    'new message inside a fragmented one': (
        ws_frame(TEXT, b'4a', fin=False) + ws_frame(TEXT, b'4b'), 1002, CLOSED),
    'close code 999': (ws_frame(CLOSE, struct.pack('!H', 999)), 1002, CLOSED),
    'close with a 1-byte body': (ws_frame(CLOSE, b'\x03'), 1002, CLOSED),
    'invalid UTF-8 in a text frame': (ws_frame(TEXT, b'4\xff\xfe'), 1007, CLOSED),
    'random bytes': (bytes(range(256)) * 4, 1002, CLOSED),
    'length 2**63-1': (ws_frame(BINARY, b'', length=2 ** 63 - 1), 1009, TOO_BIG),
    'length with the top bit set': (ws_frame(BINARY, b'', length=2 ** 64 - 1), 1009, TOO_BIG),
    'length over maxPayload': (ws_frame(BINARY, b'', length=200_001), 1009, TOO_BIG),
}


@pytest.mark.parametrize('name', list(GARBAGE))
def test_garbage_frames_end_only_that_connection(bystanders: Bystanders, hostile_server, name):
    data, code, reason = GARBAGE[name]
    raw, sid = open_raw(hostile_server)
    raw.send_raw(data)
    ended_with(raw, code)
    raw.close()
    reasons = wait_until(lambda: disconnect_reasons(hostile_server, sid), 5,
                         message=f'disconnect of {sid}')
    assert reasons == [reason]
    bystanders.check()


def test_huge_length_header_allocates_nothing(bystanders: Bystanders, hostile_server):
    before = stats(hostile_server)['rss_kb']
    for _ in range(20):
        raw, _ = open_raw(hostile_server)
        raw.send_raw(ws_frame(BINARY, b'', length=2 ** 40) + b'x' * 1000)
        ended_with(raw, 1009)
        raw.close()
    assert stats(hostile_server)['rss_kb'] - before < 50_000
    bystanders.check()


def test_oversized_message_in_fragments(bystanders: Bystanders, hostile_server):
    raw, sid = open_raw(hostile_server)
    piece = b'x' * 60_000
    raw.send_raw(ws_frame(BINARY, piece, fin=False)
                 + b''.join(ws_frame(CONT, piece, fin=False) for _ in range(3))
                 + ws_frame(CONT, piece))
    ended_with(raw, 1009)
    raw.close()
    wait_until(lambda: disconnect_reasons(hostile_server, sid) == ['payload too large'], 5,
               message=f'payload too large for {sid}')
    bystanders.check()


def test_message_just_under_the_limit_is_echoed(bystanders: Bystanders, hostile_server):
    ws, _ = open_websocket(hostile_server)
    ws.send_binary(b'y' * 200_000)
    assert ws.recv() == b'y' * 200_000
    ws.close(timeout=0.5)
    bystanders.check()


def test_trickled_frame_from_a_silent_client_is_ended_by_the_heartbeat(
        fault_bystanders: Bystanders, faults_server):
    raw, sid = open_raw(faults_server)
    raw.send_raw(ws_frame(TEXT, b'4' + b'x' * 1000)[:20])   # a frame that never completes
    wait_until(lambda: disconnect_reasons(faults_server, sid) == ['ping timeout'], 6,
               message=f'ping timeout of {sid}')
    raw.close()
    fault_bystanders.check()


# -- Engine.IO packets over WebSocket --------------------------------------

@pytest.mark.parametrize('frame', [
    ws_frame(TEXT, b''), ws_frame(TEXT, b'7'), ws_frame(TEXT, b'x'), ws_frame(TEXT, b'0'),
    ws_frame(TEXT, b'2'), ws_frame(TEXT, b'2probe'), ws_frame(TEXT, b'b!!!'),
    ws_frame(TEXT, b'bYQ'), ws_frame(TEXT, '9\u00e9'.encode()),
], ids=['empty', 'type 7', 'letter', 'open', 'ping', 'ping probe', 'bad base64',
        'base64 without padding', 'type 9'])
def test_bad_packets_close_the_session_with_a_close_packet(bystanders: Bystanders,
                                                         hostile_server, frame):
    raw, sid = open_raw(hostile_server)
    raw.send_raw(frame)
    frames = ended_with(raw, 1000)     # after the close packet: a normal close
    assert (TEXT, b'1') in frames, frames
    raw.close()
    wait_until(lambda: disconnect_reasons(hostile_server, sid) == ['parse error'], 5,
               message=f'parse error for {sid}')
    bystanders.check()


def test_odd_but_valid_packets_are_echoed(bystanders: Bystanders, hostile_server):
    ws, _ = open_websocket(hostile_server)
    for sent, echoed in (('4', '4'), ('4a\x1eb', '4a\x1eb'), ('4\x1e', '4\x1e'),
                         ('4\u00e9\U0001F600', '4\u00e9\U0001F600')):
        ws.send(sent)
        assert ws.recv() == echoed
    ws.send('6')                               # noop, unsolicited pong, upgrade: ignored
    ws.send('3')
    ws.send('5')
    ws.send_binary(b'')
    assert ws.recv() == b''
    ws.send('bAAE=')                          # forceBase64 binary
    assert ws.recv() == b'\x00\x01'
    ws.close(timeout=0.5)
    bystanders.check()


def test_many_packets_in_a_burst(bystanders: Bystanders, hostile_server):
    raw, _ = open_raw(hostile_server)
    raw.send_raw(b''.join(ws_frame(TEXT, b'4%d' % i) for i in range(2000)))
    got = []
    while len(got) < 2000:
        frame = raw.read_frame()
        assert frame is not None, f'connection ended after {len(got)} echoes'
        if frame == (TEXT, b'2'):
            raw.send_text('3')
            continue
        got.append(frame[1])
    assert got == [b'4%d' % i for i in range(2000)]
    raw.close()
    bystanders.check()


# -- handshakes and sids -----------------------------------------------------

@pytest.mark.parametrize('headers', [
    {'Sec-WebSocket-Version': '8'},
    {'Sec-WebSocket-Key': 'short'},
    {'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!!!'},
    {'Connection': 'keep-alive'},
], ids=['version 8', 'short key', 'bad key', 'no Connection: Upgrade'])
def test_bad_websocket_handshakes_get_400_before_any_101(bystanders: Bystanders, hostile_server,
                                                         headers):
    port = hostile_server.port
    base = {'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
            'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='}
    resp = http_request(port, 'GET', '/engine.io/?EIO=4&transport=websocket',
                        headers={**base, **headers})
    expect_error(resp, 400, 3)
    bystanders.check()


def test_websocket_handshake_with_post_is_refused(bystanders: Bystanders, hostile_server):
    resp = http_request(hostile_server.port, 'POST', '/engine.io/?EIO=4&transport=websocket',
                        body=b'', headers={'Upgrade': 'websocket', 'Connection': 'Upgrade',
                                           'Sec-WebSocket-Version': '13',
                                           'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='})
    expect_error(resp, 400, 2)
    bystanders.check()


def test_websocket_for_a_closed_sid(bystanders: Bystanders, hostile_server):
    # a polling session that ended
    c = PollingClient(hostile_server)
    c.handshake()
    c.close()
    raw = RawWebSocket(hostile_server.port, f'EIO=4&transport=websocket&sid={c.sid}')
    assert raw.status == 400 and json.loads(raw.body())['code'] == 1, raw.head
    raw.close()
    # a WebSocket-only session that ended
    ws, sid = open_websocket(hostile_server)
    ws.send('1')
    wait_until(lambda: disconnect_reasons(hostile_server, sid), 5, message='client disconnect')
    ws.close(timeout=0.5)
    raw = RawWebSocket(hostile_server.port, f'EIO=4&transport=websocket&sid={sid}')
    assert raw.status == 400 and json.loads(raw.body())['code'] == 1, raw.head
    raw.close()
    # a session that was upgraded, then closed
    c = PollingClient(hostile_server)
    c.handshake()
    up = RawWebSocket(hostile_server.port, f'EIO=4&transport=websocket&sid={c.sid}')
    assert up.status == 101
    up.send_text('2probe')
    assert up.read_frame() == (TEXT, b'3probe')
    up.send_text('5')
    up.send_text('4upgraded')
    assert up.read_frame() == (TEXT, b'4upgraded')
    up.send_text('1')
    ended_with(up, 1000)
    up.close()
    raw = RawWebSocket(hostile_server.port, f'EIO=4&transport=websocket&sid={c.sid}')
    assert raw.status == 400 and json.loads(raw.body())['code'] == 1, raw.head
    raw.close()
    expect_error(c.get(), 400, 1)
    bystanders.check()


def test_websocket_from_a_foreign_origin(bystanders: Bystanders, hostile_server):
    raw = RawWebSocket(hostile_server.port, headers={'Origin': 'http://evil.example'})
    assert raw.status == 403, raw.head
    assert b'evil' not in raw.head.lower()
    raw.close()
    raw = RawWebSocket(hostile_server.port, headers={'Origin': 'http://a b'})
    assert raw.status == 400, raw.head
    raw.close()
    bystanders.check()
