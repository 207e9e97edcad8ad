"""engineio_wsgi.rfc6455, bytes in and bytes out over a socket pair (RFC 6455).

The server side of ``socket.socketpair()`` is handed to ``rfc6455.accept`` as a
gunicorn request would; the test plays the client on the other side with
frames built by hand (tests/unit/wsframes.py) and reads every byte the server
writes back. No subprocess, no WebSocket library on the client side.
"""

from __future__ import annotations

import collections
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from engineio_wsgi import rfc6455
from engineio_wsgi.fifo import Fifo
from engineio_wsgi.request import Request
from tests.unit.wsframes import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    Frame,
    FrameReader,
    accept_key,
    client_key,
    close_payload,
    encode,
)

pytestmark = pytest.mark.timeout(30)

CLOSE_TIMEOUT = 0.5


@pytest.fixture(autouse=True, params=['fast-frames', 'protocol-only'])
def frame_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs twice: with the common frames taken past the protocol
    core (engineio_wsgi.rfc6455_fast), and with every byte through it."""
    monkeypatch.setattr(rfc6455, 'FAST_FRAMES', request.param == 'fast-frames')
    return str(request.param)


def handshake_environ(sock: socket.socket, key: str, **headers: str) -> dict[str, Any]:
    environ = {
        'REQUEST_METHOD': 'GET', 'SERVER_PROTOCOL': 'HTTP/1.1', 'PATH_INFO': '/ws',
        'QUERY_STRING': '', 'HTTP_HOST': 'localhost', 'HTTP_UPGRADE': 'websocket',
        'HTTP_CONNECTION': 'Upgrade', 'HTTP_SEC_WEBSOCKET_KEY': key,
        'HTTP_SEC_WEBSOCKET_VERSION': '13', 'gunicorn.socket': sock,
    }
    environ.update({f'HTTP_{name.upper()}': value for name, value in headers.items()})
    return environ


class Peer:
    """The client end: writes raw frames, reads the server's bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader(sock)

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b''.join(frames))

    def frame(self) -> Frame | None:
        return self.reader.frame()

    def close_frame(self) -> tuple[int, bytes]:
        """The next frame, which must be a close frame: (code, reason bytes)."""
        frame = self.frame()
        assert frame is not None and frame.opcode == CLOSE, frame
        assert len(frame.payload) >= 2, frame
        return struct.unpack('!H', frame.payload[:2])[0], frame.payload[2:]

    def expect_eof(self) -> None:
        assert self.reader.eof(), f'more bytes after the end: {self.reader.buf!r}'


class Pair:
    def __init__(self, conn: rfc6455.WSConnection, peer: Peer, head: bytes) -> None:
        self.conn = conn
        self.peer = peer
        self.head = head


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    client.settimeout(5)
    yield server, client
    server.close()
    client.close()


def open_pair(sockets: tuple[socket.socket, socket.socket], **options: Any) -> Pair:
    server, client = sockets
    key = client_key()
    headers = options.pop('headers', {})
    conn = rfc6455.accept(Request(handshake_environ(server, key, **headers)),
                          close_timeout=CLOSE_TIMEOUT, **options)
    peer = Peer(client)
    head = peer.reader.response_head()
    lines = head.decode('latin-1').split('\r\n')
    assert lines[0].startswith('HTTP/1.1 101'), head
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(':') for line in lines[1:])}
    assert fields['upgrade'].lower() == 'websocket', head
    assert fields['connection'].lower() == 'upgrade', head
    assert fields['sec-websocket-accept'] == accept_key(key), head
    return Pair(conn, peer, head)


@pytest.fixture
def ws(sockets: tuple[socket.socket, socket.socket]) -> Pair:
    return open_pair(sockets)


class Receiver:
    """``conn.receive()`` in a thread, so that the peer can answer meanwhile."""

    def __init__(self, conn: rfc6455.WSConnection) -> None:
        self.result: list[Any] = []
        self.thread = threading.Thread(target=lambda: self.result.append(conn.receive(timeout=10)))
        self.thread.start()

    def value(self) -> Any:
        self.thread.join(10)
        assert self.result, 'receive() did not return'
        return self.result[0]


def expect_ended(pair: Pair, close: tuple[int, bytes | None] | None) -> None:
    """The server sends ``close`` (code, reason) or no close frame, then EOF;
    the peer then closes its side too, as clients do; receive() returns None
    (without waiting for the close timeout)."""
    receiver = Receiver(pair.conn)
    if close is not None:
        got = pair.peer.close_frame()
        assert got[0] == close[0], got
        if close[1] is not None:
            assert got[1] == close[1], got
    pair.peer.expect_eof()
    started = time.monotonic()
    pair.peer.sock.shutdown(socket.SHUT_WR)
    assert receiver.value() is None
    assert time.monotonic() - started < CLOSE_TIMEOUT


def expect_failed(pair: Pair, code: int, reason: str) -> None:
    """The server failed the connection: close frame ``code``, then EOF; receive() is over."""
    expect_ended(pair, (code, None))
    assert pair.conn.end_reason == reason
    assert pair.conn.close_code == code


# -- handshake -----------------------------------------------------------------

def test_handshake_without_offer_negotiates_nothing(ws: Pair) -> None:
    assert b'sec-websocket-extensions' not in ws.head.lower()
    assert ws.conn.extensions == []
    assert ws.conn.open


def test_compression_is_negotiated_only_when_enabled(sockets: tuple[socket.socket, socket.socket]) -> None:
    pair = open_pair(sockets, compression=True,
                     headers={'SEC_WEBSOCKET_EXTENSIONS': 'permessage-deflate; client_max_window_bits'})
    assert b'permessage-deflate' in pair.head.lower()
    assert pair.conn.extensions == ['permessage-deflate']


def test_offer_ignored_without_compression(sockets: tuple[socket.socket, socket.socket]) -> None:
    pair = open_pair(sockets, headers={'SEC_WEBSOCKET_EXTENSIONS': 'permessage-deflate'})
    assert b'permessage-deflate' not in pair.head.lower()


@pytest.mark.parametrize('change, message', [
    ({'REQUEST_METHOD': 'POST'}, 'GET'),
    ({'SERVER_PROTOCOL': 'HTTP/1.0'}, 'HTTP/1.1'),
    ({'HTTP_UPGRADE': 'h2c'}, 'Upgrade'),
    ({'HTTP_CONNECTION': 'keep-alive'}, 'Connection'),
    ({'HTTP_SEC_WEBSOCKET_VERSION': '8'}, 'Version'),
    ({'HTTP_SEC_WEBSOCKET_KEY': 'c2hvcnQ='}, 'Key'),
    ({'HTTP_SEC_WEBSOCKET_KEY': '!!!not base64!!!!!!!!!!='}, 'Key'),
])
def test_bad_handshake_writes_nothing(sockets: tuple[socket.socket, socket.socket],
                                      change: dict[str, str], message: str) -> None:
    server, client = sockets
    environ = {**handshake_environ(server, client_key()), **change}
    with pytest.raises(rfc6455.HandshakeError) as info:
        rfc6455.accept(Request(environ))
    assert info.value.status == 400
    assert message in info.value.message
    if message == 'Version':
        assert ('Sec-WebSocket-Version', '13') in info.value.headers
    server.shutdown(socket.SHUT_WR)
    assert client.recv(1) == b'', 'the refused handshake wrote bytes'


def test_bytes_pipelined_after_the_request_are_kept(sockets: tuple[socket.socket, socket.socket]) -> None:
    server, client = sockets
    # the client's first frame is already in the socket before the server answers
    client.sendall(encode(TEXT, b'early'))
    pair = open_pair(sockets)
    assert pair.conn.receive(timeout=5) == 'early'


# -- data frames ---------------------------------------------------------------

@pytest.mark.parametrize('opcode, payload, expected', [
    (TEXT, b'hello', 'hello'),
    (TEXT, b'', ''),
    (TEXT, 'héllo €🎉'.encode(), 'héllo €🎉'),
    (BINARY, b'\x00\x01\xff', b'\x00\x01\xff'),
    (BINARY, b'', b''),
    (TEXT, b'x' * 126, 'x' * 126),              # 16-bit length
    (BINARY, b'\x07' * 70_000, b'\x07' * 70_000),  # 64-bit length
])
def test_message_in_one_frame(ws: Pair, opcode: int, payload: bytes, expected: str | bytes) -> None:
    ws.peer.send(encode(opcode, payload))
    assert ws.conn.receive(timeout=5) == expected


@pytest.mark.parametrize('opcode', [TEXT, BINARY])
@pytest.mark.parametrize('size', [0, 1, 125, 126, 127, 65_535, 65_536])
def test_every_length_boundary(ws: Pair, opcode: int, size: int) -> None:
    """7-bit, 16-bit and 64-bit lengths at their edges, alone and in one write
    with a small frame on each side."""
    payload = bytes(ord('a') + i % 26 for i in range(size))
    expected: str | bytes = payload.decode() if opcode == TEXT else payload
    ws.peer.send(encode(opcode, payload))
    assert ws.conn.receive(timeout=5) == expected
    ws.peer.send(encode(BINARY, b'<'), encode(opcode, payload), encode(TEXT, b'>'))
    assert [ws.conn.receive(timeout=5) for _ in range(3)] == [b'<', expected, '>']


def test_masking_keys_are_honoured(ws: Pair) -> None:
    for mask in (b'\x00\x00\x00\x00', b'\xff\xff\xff\xff', b'\x01\x02\x03\x04'):
        ws.peer.send(encode(TEXT, b'masked text', mask=mask))
        assert ws.conn.receive(timeout=5) == 'masked text'


def test_several_frames_in_one_write_come_in_order(ws: Pair) -> None:
    ws.peer.send(*(encode(TEXT, f'n{i}'.encode()) for i in range(50)))
    assert [ws.conn.receive(timeout=5) for _ in range(50)] == [f'n{i}' for i in range(50)]


def test_a_burst_of_messages_is_taken_from_a_deque_and_leaves_no_buffer(ws: Pair) -> None:
    """Thousands of small frames arrive in one read: each is taken without
    moving the others (a list's pop(0) would, quadratic in the burst), and the
    drained queue holds no buffer again."""
    count = 3000
    ws.peer.send(b''.join(encode(TEXT, f'm{i}'.encode()) for i in range(count)))
    first = ws.conn.receive(timeout=5)
    assert first == 'm0'
    got = [first]
    # one read took them all (about 33 kB, on loopback already in the socket):
    # the rest waits in a deque
    assert isinstance(ws.conn._messages, collections.deque)
    assert len(ws.conn._messages) == count - 1
    got += [ws.conn.receive(timeout=5) for _ in range(count - 1)]
    assert got == [f'm{i}' for i in range(count)]
    assert type(ws.conn._messages) is Fifo and not ws.conn._messages


def test_frame_split_byte_by_byte(ws: Pair) -> None:
    data = encode(BINARY, b'0123456789' * 20)
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(ws.conn.receive(timeout=10)))
    reader.start()
    for i in range(len(data)):
        ws.peer.send(data[i:i + 1])
    reader.join(10)
    assert result == [b'0123456789' * 20]


def test_fragmented_text_is_one_message(ws: Pair) -> None:
    text = 'fragmented € message'.encode()
    # the € is split between two fragments: UTF-8 is checked on the whole message
    cut = text.index('€'.encode()) + 1
    ws.peer.send(encode(TEXT, text[:cut], fin=False), encode(CONT, text[cut:-3], fin=False),
                 encode(CONT, text[-3:]))
    assert ws.conn.receive(timeout=5) == 'fragmented € message'


def test_character_split_over_three_fragments(ws: Pair) -> None:
    emoji = '🎉'.encode()      # four bytes
    ws.peer.send(encode(TEXT, b'a' + emoji[:1], fin=False), encode(CONT, emoji[1:3], fin=False),
                 encode(CONT, emoji[3:] + b'z'))
    assert ws.conn.receive(timeout=5) == 'a🎉z'


def test_simple_frames_around_a_fragmented_message(ws: Pair) -> None:
    ws.peer.send(encode(TEXT, b'before'), encode(BINARY, b'fr', fin=False), encode(PING, b'p'),
                 encode(CONT, b'ag'), encode(TEXT, b'after'))
    assert [ws.conn.receive(timeout=5) for _ in range(3)] == ['before', b'frag', 'after']
    assert ws.peer.frame() == Frame(True, 0, PONG, b'p')


def test_frames_split_at_every_offset(ws: Pair) -> None:
    """Two simple frames, a ping and a last frame written in two pieces, cut
    at each byte: the half frame waits for its rest whatever path it took."""
    data = encode(TEXT, b'one') + encode(BINARY, b'x' * 130) + encode(PING, b'!') + encode(TEXT, b'end')
    for cut in range(1, len(data)):
        ws.peer.send(data[:cut])
        receiver = Receiver(ws.conn)
        ws.peer.send(data[cut:])
        assert receiver.value() == 'one', cut
        assert [ws.conn.receive(timeout=5) for _ in range(2)] == [b'x' * 130, 'end'], cut
        assert ws.peer.frame() == Frame(True, 0, PONG, b'!'), cut


def test_fragmented_binary_with_empty_fragments(ws: Pair) -> None:
    ws.peer.send(encode(BINARY, b'', fin=False), encode(CONT, b'ab', fin=False),
                 encode(CONT, b'', fin=False), encode(CONT, b'c'))
    assert ws.conn.receive(timeout=5) == b'abc'


def test_control_frames_between_fragments(ws: Pair) -> None:
    ws.peer.send(encode(TEXT, b'one ', fin=False), encode(PING, b'p1'), encode(CONT, b'two ', fin=False),
                 encode(PONG, b'unsolicited'), encode(PING, b''), encode(CONT, b'three'))
    assert ws.conn.receive(timeout=5) == 'one two three'
    assert ws.peer.frame() == Frame(True, 0, PONG, b'p1')
    assert ws.peer.frame() == Frame(True, 0, PONG, b'')


def test_close_inside_a_fragmented_message(ws: Pair) -> None:
    # A control frame may come between fragments (RFC 6455 5.4), a close too:
    # it is answered as any close, with the peer's code (not 1002: the peer
    # made no protocol error; Autobahn's case 7.1.5). The partial message is
    # never delivered, and the fragment after the close is discarded.
    ws.peer.send(encode(TEXT, b'never ', fin=False), encode(CLOSE, close_payload(1000, b'bye')),
                 encode(CONT, b'after'))
    expect_ended(ws, (1000, b'bye'))
    assert ws.conn.receive(timeout=1) is None
    assert ws.conn.end_reason == rfc6455.PEER_CLOSE
    assert ws.conn.close_code == 1000


def test_close_with_a_bad_code_inside_a_fragmented_message(ws: Pair) -> None:
    # the close frame itself is still checked: a code one may not send is a protocol error
    ws.peer.send(encode(TEXT, b'never ', fin=False), encode(CLOSE, close_payload(1005)))
    expect_failed(ws, 1002, rfc6455.PROTOCOL_ERROR)


def test_ping_is_answered_with_its_payload(ws: Pair) -> None:
    payload = bytes(range(125))    # the largest control payload
    ws.peer.send(encode(PING, payload), encode(TEXT, b'after'))
    assert ws.conn.receive(timeout=5) == 'after'
    assert ws.peer.frame() == Frame(True, 0, PONG, payload)


def test_unsolicited_pong_is_ignored(ws: Pair) -> None:
    ws.peer.send(encode(PONG, b'abc'), encode(TEXT, b'after'))
    assert ws.conn.receive(timeout=5) == 'after'
    # nothing was written in answer: the next thing the peer sees is the echo of this
    ws.conn.send('marker')
    assert ws.peer.frame() == Frame(True, 0, TEXT, b'marker')


def test_receive_times_out_without_a_message(ws: Pair) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        ws.conn.receive(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    ws.peer.send(encode(TEXT, b'still open'))
    assert ws.conn.receive(timeout=5) == 'still open'


# -- protocol errors: close 1002 / 1007 ----------------------------------------

@pytest.mark.parametrize('data', [
    pytest.param(encode(TEXT, b'hi', mask=None), id='unmasked'),
    pytest.param(encode(CONT, b'hi'), id='continuation-first'),
    pytest.param(encode(TEXT, b'a', fin=False) + encode(TEXT, b'b'), id='data-inside-fragmented'),
    pytest.param(encode(BINARY, b'a', fin=False) + encode(BINARY, b'b', fin=False), id='binary-inside-fragmented'),
    pytest.param(encode(TEXT, b'hi', rsv=4), id='rsv1-without-extension'),
    pytest.param(encode(TEXT, b'hi', rsv=2), id='rsv2'),
    pytest.param(encode(TEXT, b'hi', rsv=1), id='rsv3'),
    pytest.param(encode(PING, b'hi', fin=False), id='fragmented-ping'),
    pytest.param(encode(CLOSE, close_payload(1000), fin=False), id='fragmented-close'),
    pytest.param(encode(PING, b'x' * 126), id='ping-over-125'),
    pytest.param(encode(PONG, b'x' * 126), id='pong-over-125'),
    pytest.param(encode(CLOSE, close_payload(1000, b'r' * 124)), id='close-over-125'),
    *(pytest.param(encode(op, b'hi'), id=f'opcode-{op:#x}') for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)),
    pytest.param(encode(CLOSE, b'\x03'), id='close-one-byte'),
    *(pytest.param(encode(CLOSE, close_payload(code)), id=f'close-code-{code}')
      for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)),
])
def test_protocol_error_closes_1002(ws: Pair, data: bytes) -> None:
    ws.peer.send(data)
    expect_failed(ws, 1002, rfc6455.PROTOCOL_ERROR)


@pytest.mark.parametrize('data', [
    pytest.param(encode(TEXT, b'\xff'), id='text'),
    pytest.param(encode(TEXT, b'ok \xed\xa0\x80'), id='text-surrogate'),
    pytest.param(encode(TEXT, b'\xe2\x82', fin=False) + encode(CONT, b'x'), id='fragmented-text'),
    pytest.param(encode(TEXT, b'ok', fin=False) + encode(CONT, b'\xf0\x9f'), id='cut-at-the-end'),
    pytest.param(encode(TEXT, b'\xe2', fin=False) + encode(CONT, b'\x28\xa1'), id='bad-across-fragments'),
    pytest.param(encode(TEXT, b'\xc0\xaf'), id='overlong'),
    pytest.param(encode(TEXT, b'\xf4\x90\x80\x80'), id='above-u10ffff'),
    pytest.param(encode(TEXT, b'x' * 200 + b'\xff'), id='16-bit-length'),
    pytest.param(encode(CLOSE, close_payload(1000, b'\xff')), id='close-reason'),
])
def test_invalid_utf8_closes_1007(ws: Pair, data: bytes) -> None:
    ws.peer.send(data)
    expect_failed(ws, 1007, rfc6455.PROTOCOL_ERROR)


def test_messages_before_an_error_are_delivered(ws: Pair) -> None:
    ws.peer.send(encode(TEXT, b'first'), encode(BINARY, b'second'), encode(7, b'bad'))
    assert ws.conn.receive(timeout=5) == 'first'
    assert ws.conn.receive(timeout=5) == b'second'
    expect_failed(ws, 1002, rfc6455.PROTOCOL_ERROR)


@pytest.mark.parametrize('bad, code', [
    pytest.param(encode(TEXT, b'\xfe'), 1007, id='invalid-utf8'),
    pytest.param(encode(TEXT, b'hi', rsv=4), 1002, id='rsv1'),
    pytest.param(encode(BINARY, b'hi', mask=None), 1002, id='unmasked'),
    pytest.param(encode(CONT, b'hi'), 1002, id='continuation'),
    pytest.param(encode(BINARY, b'x' * 70_000), 1009, id='over-the-limit'),
])
def test_simple_frames_then_an_error_in_one_write(sockets: tuple[socket.socket, socket.socket],
                                                  bad: bytes, code: int) -> None:
    pair = open_pair(sockets, max_message_size=65_536)
    pair.peer.send(encode(TEXT, b'valid'), encode(BINARY, b'\xff' * 300), bad, encode(TEXT, b'never'))
    assert pair.conn.receive(timeout=5) == 'valid'
    assert pair.conn.receive(timeout=5) == b'\xff' * 300
    expect_failed(pair, code, rfc6455.MESSAGE_TOO_BIG if code == 1009 else rfc6455.PROTOCOL_ERROR)


def test_nothing_is_delivered_after_an_error(ws: Pair) -> None:
    ws.peer.send(encode(TEXT, b'\xff'), encode(TEXT, b'after the error'))
    expect_failed(ws, 1007, rfc6455.PROTOCOL_ERROR)
    assert ws.conn.receive(timeout=1) is None


# -- size limit: close 1009 ----------------------------------------------------

def test_message_at_the_limit_is_delivered(sockets: tuple[socket.socket, socket.socket]) -> None:
    pair = open_pair(sockets, max_message_size=1000)
    pair.peer.send(encode(BINARY, b'x' * 1000))
    assert pair.conn.receive(timeout=5) == b'x' * 1000


@pytest.mark.parametrize('data', [
    pytest.param(encode(BINARY, b'x' * 1001), id='one-frame'),
    pytest.param(encode(TEXT, '€'.encode() * 334), id='bytes-not-characters'),
    pytest.param(encode(TEXT, b'x' * 600, fin=False) + encode(CONT, b'x' * 401), id='fragments'),
    # only the header of a huge frame: refused before its payload is buffered
    pytest.param(bytes([0x82, 0xFF]) + struct.pack('!Q', 1 << 40) + b'\0\0\0\0', id='header-only'),
])
def test_message_over_the_limit_closes_1009(sockets: tuple[socket.socket, socket.socket], data: bytes) -> None:
    pair = open_pair(sockets, max_message_size=1000)
    pair.peer.send(data)
    expect_failed(pair, 1009, rfc6455.MESSAGE_TOO_BIG)


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b'\x00\x00\xff\xff')
    return out[:-4]


def test_compressed_message_counts_after_decompression(sockets: tuple[socket.socket, socket.socket]) -> None:
    pair = open_pair(sockets, max_message_size=1000, compression=True,
                     headers={'SEC_WEBSOCKET_EXTENSIONS': 'permessage-deflate'})
    pair.peer.send(encode(TEXT, _deflate(b'a' * 1000), rsv=4))
    assert pair.conn.receive(timeout=5) == 'a' * 1000
    bomb = _deflate(b'a' * 100_000)
    assert len(bomb) < 1000
    pair.peer.send(encode(TEXT, bomb, rsv=4))
    expect_failed(pair, 1009, rfc6455.MESSAGE_TOO_BIG)


# -- close handshake -----------------------------------------------------------

@pytest.mark.parametrize('code, reason', [
    (1000, b'bye'), (1001, b''), (3000, b'app'), (4999, 'ré'.encode()),
    *((code, b'') for code in (1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)),
    (1000, b'r' * 123),      # the largest close payload
])
def test_peer_close_is_echoed(ws: Pair, code: int, reason: bytes) -> None:
    ws.peer.send(encode(CLOSE, close_payload(code, reason)))
    expect_ended(ws, (code, None))
    assert ws.conn.end_reason == rfc6455.PEER_CLOSE
    assert ws.conn.close_code == code
    assert not ws.conn.open


def test_empty_close_is_answered_with_empty_close(ws: Pair) -> None:
    ws.peer.send(encode(CLOSE, b''))
    receiver = Receiver(ws.conn)
    assert ws.peer.frame() == Frame(True, 0, CLOSE, b'')
    ws.peer.expect_eof()
    ws.peer.sock.shutdown(socket.SHUT_WR)
    assert receiver.value() is None
    assert ws.conn.close_code == 1005
    assert ws.conn.end_reason == rfc6455.PEER_CLOSE


def test_eof_without_close_frame(ws: Pair) -> None:
    ws.peer.sock.shutdown(socket.SHUT_WR)
    assert ws.conn.receive(timeout=5) is None
    assert ws.conn.end_reason == rfc6455.CONNECTION_LOST
    assert ws.conn.close_code is None


def test_eof_inside_a_frame(ws: Pair) -> None:
    ws.peer.send(encode(BINARY, b'x' * 100)[:50])
    ws.peer.sock.shutdown(socket.SHUT_WR)
    assert ws.conn.receive(timeout=5) is None
    assert ws.conn.end_reason == rfc6455.CONNECTION_LOST


def test_send_after_peer_close_raises(ws: Pair) -> None:
    ws.peer.send(encode(CLOSE, close_payload(1000)))
    expect_ended(ws, (1000, b''))
    with pytest.raises(rfc6455.ConnectionClosed):
        ws.conn.send('too late')


def answer_close(peer: Peer, code: int) -> tuple[int, bytes]:
    """Read the server's close frame, answer it, read EOF, close our side: a polite client."""
    got = peer.close_frame()
    peer.send(encode(CLOSE, close_payload(code)))
    peer.expect_eof()
    peer.sock.shutdown(socket.SHUT_WR)
    return got


def test_server_close_from_the_reader(ws: Pair) -> None:
    # close() in the thread that reads: returns once the handshake is over
    answer: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: answer.append(answer_close(ws.peer, 1001)))
    client.start()
    started = time.monotonic()
    ws.conn.close(1001, 'going away')
    assert time.monotonic() - started < CLOSE_TIMEOUT
    client.join(5)
    assert answer == [(1001, b'going away')]
    assert ws.conn.end_reason == rfc6455.LOCAL_CLOSE
    assert ws.conn.receive(timeout=1) is None


def test_server_close_from_another_thread(ws: Pair) -> None:
    receiver = Receiver(ws.conn)
    ws.conn.close(4000, 'custom reason')
    assert answer_close(ws.peer, 4000) == (4000, b'custom reason')
    assert receiver.value() is None
    assert ws.conn.end_reason == rfc6455.LOCAL_CLOSE


def test_close_reason_is_cut_to_123_bytes_on_a_character_boundary(ws: Pair) -> None:
    receiver = Receiver(ws.conn)
    ws.conn.close(1000, 'é' * 100)     # 200 bytes
    code, reason = answer_close(ws.peer, 1000)
    assert receiver.value() is None
    assert code == 1000
    assert reason == 'é'.encode() * 61     # 122 bytes: a 124th byte would split a character


@pytest.mark.parametrize('code', [1005, 1006, 999, 5000])
def test_close_with_a_code_one_may_not_send_sends_1000(ws: Pair, code: int) -> None:
    receiver = Receiver(ws.conn)
    ws.conn.close(code, 'x')
    assert answer_close(ws.peer, 1000) == (1000, b'x')
    assert receiver.value() is None


def test_close_from_another_thread_gives_up_on_a_silent_peer(ws: Pair) -> None:
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(ws.conn.receive()))
    reader.start()
    started = time.monotonic()
    ws.conn.close(1000)        # another thread than the reader: returns at once
    assert time.monotonic() - started < CLOSE_TIMEOUT
    assert ws.peer.close_frame() == (1000, b'')
    reader.join(CLOSE_TIMEOUT + 5)     # the peer never answers
    assert result == [None]
    assert time.monotonic() - started >= CLOSE_TIMEOUT
    assert ws.conn.end_reason == rfc6455.LOCAL_CLOSE
    ws.peer.expect_eof()


def test_data_in_flight_during_a_close_still_reaches_the_reader(ws: Pair) -> None:
    receiver = Receiver(ws.conn)
    ws.conn.close(1000)
    assert ws.peer.close_frame() == (1000, b'')
    # sent before the peer saw our close frame (RFC 6455 1.4: data may follow a close)
    ws.peer.send(encode(TEXT, b'in flight'), encode(CLOSE, close_payload(1000)))
    assert receiver.value() == 'in flight'
    ws.peer.expect_eof()
    ws.peer.sock.shutdown(socket.SHUT_WR)
    assert ws.conn.receive(timeout=5) is None
    assert ws.conn.end_reason == rfc6455.LOCAL_CLOSE


def test_close_twice_is_harmless(ws: Pair) -> None:
    ws.peer.send(encode(CLOSE, close_payload(1000)))
    expect_ended(ws, (1000, b''))
    ws.conn.close()
    ws.conn.close(1001)
    assert ws.conn.close_code == 1000
    assert ws.conn.end_reason == rfc6455.PEER_CLOSE


# -- server to client ----------------------------------------------------------

@pytest.mark.parametrize('message, opcode, payload', [
    ('hello', TEXT, b'hello'),
    ('', TEXT, b''),
    ('€', TEXT, '€'.encode()),
    (b'\x00\xff', BINARY, b'\x00\xff'),
    ('x' * 125, TEXT, b'x' * 125),
    ('x' * 126, TEXT, b'x' * 126),
    (b'y' * 65_535, BINARY, b'y' * 65_535),
    (b'z' * 65_536, BINARY, b'z' * 65_536),
])
def test_server_frames(ws: Pair, message: str | bytes, opcode: int, payload: bytes) -> None:
    sender = threading.Thread(target=ws.conn.send, args=(message,))
    sender.start()
    assert ws.peer.frame() == Frame(True, 0, opcode, payload)
    sender.join(5)


def test_length_encoding_is_minimal(ws: Pair) -> None:
    for size, header in ((125, 2), (126, 4), (65_535, 4), (65_536, 10)):
        sender = threading.Thread(target=ws.conn.send, args=(b'q' * size,))
        sender.start()
        raw = b''
        while len(raw) < header + size:
            raw += ws.peer.sock.recv(header + size - len(raw))
        sender.join(5)
        assert len(raw) == header + size, size
        assert raw[1] == (size if header == 2 else 126 if header == 4 else 127), size


def test_send_many_keeps_order(ws: Pair) -> None:
    messages = [f'm{i}' if i % 2 else f'm{i}'.encode() for i in range(20)]
    sender = threading.Thread(target=ws.conn.send_many, args=(messages,))
    sender.start()
    got = [ws.peer.frame() for _ in messages]
    sender.join(5)
    assert [(f.opcode, f.payload) for f in got if f] == [
        (TEXT if isinstance(m, str) else BINARY, m.encode() if isinstance(m, str) else m) for m in messages]


def test_send_on_a_broken_socket_raises(ws: Pair) -> None:
    ws.peer.sock.close()
    with pytest.raises(rfc6455.ConnectionClosed):
        for _ in range(100):       # the first writes may still land in the kernel buffer
            ws.conn.send(b'x' * 65536)
    assert ws.conn.end_reason == rfc6455.CONNECTION_LOST
    assert not ws.conn.open


def test_a_write_after_the_peer_closed_is_reported_as_the_client_closing(ws: Pair) -> None:
    """What the session's writer raises when the client's close frame came
    first: ``TransportClosed``, so the session ends as "transport close"."""
    from engineio_wsgi.packets import Packet, PacketType
    from engineio_wsgi.transport import TransportClosed
    from engineio_wsgi.websocket_transport import write_batch

    ws.peer.send(encode(CLOSE, close_payload(1000)))
    assert Receiver(ws.conn).value() is None
    assert ws.conn.end_reason == rfc6455.PEER_CLOSE
    with pytest.raises(TransportClosed):
        write_batch(ws.conn, False, ws.conn.frame_encoder(), [Packet(PacketType.MESSAGE, 'late')])
