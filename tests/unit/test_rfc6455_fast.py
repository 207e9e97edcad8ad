"""engineio_wsgi.rfc6455_fast: the short cut must be invisible.

Random byte streams (valid and broken frames, cut at random places, with or
without an end of stream) go to three readers: a connection taking the common
frames past the protocol core, a connection sending every byte through it,
and the bare protocol (``websockets``' own, as rfc6455 subclasses it).
Messages, bytes written back, states, close codes and errors must be the same.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, State
from websockets.server import ServerProtocol

from engineio_wsgi import rfc6455, rfc6455_fast
from tests.unit.wsframes import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, encode

pytestmark = pytest.mark.timeout(300)

# Fixed (derandomized) and bounded, as the other fuzz tests: the same cases
# on every run, a few seconds.
FUZZ = settings(max_examples=2000, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture
def sockets() -> Iterator[socket.socket]:
    """The server's end: never read nor written by these tests (bytes are fed
    to the connection directly), but a connection needs one."""
    server, client = socket.socketpair()
    yield server
    server.close()
    client.close()


def connection(sock: socket.socket, fast: bool, max_size: int | None,
               compression: bool = False) -> rfc6455.WSConnection:
    proto = rfc6455._ServerProtocol(state=State.OPEN, max_size=max_size,
                                    logger=rfc6455._PROTOCOL_LOGGER)
    if compression:
        from websockets.extensions.permessage_deflate import PerMessageDeflate
        proto.extensions = [PerMessageDeflate(False, False, 15, 15)]
    return rfc6455.WSConnection(sock, proto, rfc6455._Runtime(sock, None), fast_frames=fast)


def feed(conn: rfc6455.WSConnection, data: bytes) -> None:
    """What receive() does with the bytes of one recv() (b'' at the end of the stream)."""
    with conn._state_lock:
        conn._feed(data)


def observe(conn: rfc6455.WSConnection) -> dict[str, Any]:
    proto = conn._proto
    return {
        'messages': list(conn._messages),
        'written': list(conn._outbox),
        'state': proto.state,
        'close_code': conn.close_code,
        'close_rcvd': (proto.close_rcvd.code, proto.close_rcvd.reason) if proto.close_rcvd else None,
        'close_sent': (proto.close_sent.code, proto.close_sent.reason) if proto.close_sent else None,
        'end_reason': conn.end_reason,
        'error': repr(proto.parser_exc),
        'failed': conn._failed,
        'fragment': proto.current_size,
    }


# -- the random streams -----------------------------------------------------------

_MASKS = st.binary(min_size=4, max_size=4)
_SIZES = st.one_of(st.integers(0, 20), st.sampled_from([0, 1, 124, 125, 126, 127, 200, 1000, 1001,
                                                        65_535, 65_536]))


def _utf8(draw: Any) -> bytes:
    return draw(st.text(max_size=40)).encode('utf-8')


def _bad_utf8(draw: Any) -> bytes:
    good = draw(st.text(max_size=10)).encode()
    bad = draw(st.sampled_from([b'\xff', b'\xc0\xaf', b'\xed\xa0\x80', b'\xf4\x90\x80\x80',
                                b'\xe2\x82', b'\xf0\x9f', b'\x80']))
    return good + bad if draw(st.booleans()) else bad + good


def _raw_frame(draw: Any, opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
               masked: bool = True, width: int | None = None) -> bytes:
    """A frame with any length encoding (also the non-minimal ones)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if width is None:
        width = 7 if size < 126 else 16 if size < 65536 else 64
    if width == 7:
        head += bytes([mask_bit | size])
    elif width == 16:
        head += bytes([mask_bit | 126]) + struct.pack('!H', size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack('!Q', size)
    if not masked:
        return head + payload
    return head + encode(BINARY, payload, mask=draw(_MASKS))[-(size + 4):]


@st.composite
def frames(draw: Any) -> list[bytes]:
    """One frame, or the frames of a fragmented message (with control frames between)."""
    kind = draw(st.sampled_from([
        'text', 'text', 'text', 'binary', 'binary', 'near-simple', 'near-simple', 'bad-text',
        'sized', 'sized', 'fragmented', 'fragmented', 'ping', 'pong', 'close', 'odd-length',
        'broken', 'nested', 'garbage',
    ]))
    if kind == 'text':
        return [_raw_frame(draw, TEXT, _utf8(draw))]
    if kind == 'binary':
        return [_raw_frame(draw, BINARY, draw(st.binary(max_size=40)))]
    if kind == 'near-simple':
        # a simple frame but for one thing
        opcode = draw(st.sampled_from([TEXT, BINARY]))
        change = draw(st.sampled_from(['rsv', 'unmasked', 'opcode', 'not-fin', 'wide']))
        return [_raw_frame(
            draw, draw(st.sampled_from([0, 3, 7, 8, 9, 10, 11, 15])) if change == 'opcode' else opcode,
            b'abc', rsv=draw(st.integers(1, 7)) if change == 'rsv' else 0,
            masked=change != 'unmasked', fin=change != 'not-fin',
            width=64 if change == 'wide' else None)]
    if kind == 'bad-text':
        return [_raw_frame(draw, TEXT, _bad_utf8(draw))]
    if kind == 'sized':
        size = draw(_SIZES)
        return [_raw_frame(draw, draw(st.sampled_from([TEXT, BINARY])), b'a' * size)]
    if kind == 'fragmented':
        opcode = draw(st.sampled_from([TEXT, BINARY]))
        payload = _utf8(draw) if draw(st.booleans()) else _bad_utf8(draw)
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        out = []
        for i, piece in enumerate(pieces):
            out.append(_raw_frame(draw, opcode if i == 0 else CONT, piece, fin=i == len(pieces) - 1))
            if i < len(pieces) - 1 and draw(st.booleans()):
                # a control frame (allowed) or a data frame (not allowed) in the middle
                out.append(_raw_frame(draw, draw(st.sampled_from([PING, PONG, CLOSE, TEXT, BINARY])),
                                      draw(st.binary(max_size=4))))
        return out
    if kind in ('ping', 'pong'):
        return [_raw_frame(draw, PING if kind == 'ping' else PONG,
                           draw(st.binary(max_size=draw(st.sampled_from([5, 125, 126])))))]
    if kind == 'close':
        payload = draw(st.one_of(
            st.just(b''), st.binary(min_size=1, max_size=1),
            st.builds(close_payload, st.sampled_from([1000, 1001, 1002, 1005, 1006, 1007, 1011, 1015,
                                                      2999, 3000, 4999, 5000]),
                      st.sampled_from([b'', b'bye', b'\xff', 'é'.encode() * 62]))))
        return [_raw_frame(draw, CLOSE, payload, fin=draw(st.booleans()) or draw(st.booleans()))]
    if kind == 'odd-length':
        # non-minimal length fields
        payload = draw(st.binary(max_size=30))
        return [_raw_frame(draw, draw(st.sampled_from([TEXT, BINARY, PING])), payload,
                           width=draw(st.sampled_from([16, 64])))]
    if kind == 'broken':
        return [_raw_frame(draw, draw(st.integers(0, 15)), draw(st.binary(max_size=10)),
                           fin=draw(st.booleans()), rsv=draw(st.integers(0, 7)),
                           masked=draw(st.booleans()))]
    if kind == 'nested':
        # a frame whose bytes on the wire are another frame (mask 0): read
        # from inside the outer frame, they would pass for a message
        inner = encode(draw(st.sampled_from([TEXT, BINARY])), b'inner')
        return [encode(BINARY, inner, mask=b'\0\0\0\0')]
    return [draw(st.binary(min_size=1, max_size=12))]


@st.composite
def streams(draw: Any) -> tuple[list[bytes], bool]:
    """Frames cut into chunks: often at frame boundaries (where the fast path
    starts), often inside a header (where the protocol must be left alone),
    sometimes anywhere or byte by byte."""
    parts = [frame for group in draw(st.lists(frames(), min_size=1, max_size=8)) for frame in group]
    data = b''.join(parts)
    if draw(st.integers(0, 9)) == 0:
        return [data[i:i + 1] for i in range(len(data))], draw(st.booleans())
    cuts: set[int] = set()
    offset = 0
    for frame in parts:
        choice = draw(st.integers(0, 5))
        if choice <= 2:
            cuts.add(offset)                                      # before the frame
        elif choice == 3:
            cuts.add(offset + draw(st.sampled_from([1, 2, 4, 6, 8, 10, 14])))   # in its header
        offset += len(frame)
    cuts.update(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=2)))
    edges = sorted(c for c in cuts if 0 < c < len(data))
    chunks = [data[a:b] for a, b in zip([0, *edges], [*edges, len(data)], strict=True)]
    return [c for c in chunks if c], draw(st.booleans())


# -- the comparisons --------------------------------------------------------------

def _plain(chunks: list[bytes], eof: bool, max_size: int | None) -> tuple[dict[str, Any], bool]:
    """The bare protocol (the class the connections use, see ``connection``):
    messages put together from its frames, bytes it writes, its state. Also
    whether some text was not UTF-8 (which the connection, not the protocol,
    refuses)."""
    proto = rfc6455._ServerProtocol(state=State.OPEN, max_size=max_size,
                                    logger=rfc6455._PROTOCOL_LOGGER)
    messages: list[str | bytes] = []
    written: list[bytes] = []
    parts: list[bytes] = []
    opcode: Any = None
    bad_text = False
    for chunk in [*chunks, *([b''] if eof else [])]:
        if proto.state is rfc6455.CLOSED:
            break
        if chunk:
            proto.receive_data(chunk)
        else:
            proto.receive_eof()
        for frame in proto.events_received():
            assert isinstance(frame, Frame)
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                opcode, parts = frame.opcode, [frame.data]
            elif frame.opcode is Opcode.CONT:
                parts.append(frame.data)
            else:
                continue
            if frame.fin:
                data = b''.join(parts)
                if opcode is Opcode.TEXT:
                    try:
                        messages.append(data.decode('utf-8'))
                    except UnicodeDecodeError:
                        bad_text = True
                else:
                    messages.append(data)
        written += proto.data_to_send()
    return {'messages': messages, 'written': written, 'state': proto.state,
            'error': repr(proto.parser_exc)}, bad_text


@FUZZ
@given(stream=streams(), max_size=st.sampled_from([None, 1000, 125, 126, 65_536]))
def test_fast_path_matches_the_protocol(sockets: socket.socket, stream: tuple[list[bytes], bool],
                                        max_size: int | None) -> None:
    chunks, eof = stream
    fast = connection(sockets, True, max_size)
    slow = connection(sockets, False, max_size)
    for chunk in chunks:
        feed(fast, chunk)
        feed(slow, chunk)
        assert observe(fast) == observe(slow)
    if eof:
        feed(fast, b'')
        feed(slow, b'')
        assert observe(fast) == observe(slow)

    plain, bad_text = _plain(chunks, eof, max_size)
    got = observe(fast)
    if bad_text:
        # the connection fails on the first bad text message; what came before is the same
        assert plain['messages'][:len(got['messages'])] == got['messages']
        assert got['failed'] or got['state'] is not OPEN
    else:
        assert {key: got[key] for key in plain} == plain


def _waiting_in(proto: Any) -> Any:
    """The generator the protocol's parser is suspended in (a new one per frame parsed)."""
    gen = proto.parser
    while getattr(gen, 'gi_yieldfrom', None) is not None:
        gen = gen.gi_yieldfrom
    return gen


@pytest.mark.parametrize('fast', [True, False])
def test_the_fast_path_is_taken_for_simple_frames(sockets: socket.socket, fast: bool) -> None:
    """The comparison above is only worth something if the short cut is used:
    simple frames leave the protocol's parser where it was, others step it."""
    conn = connection(sockets, fast, 1_000_000)
    proto = conn._proto
    assert rfc6455_fast.at_frame_start(proto)
    before = _waiting_in(proto)
    feed(conn, encode(TEXT, b'hello') + encode(BINARY, b'x' * 300))
    assert list(conn._messages) == ['hello', b'x' * 300]
    assert (_waiting_in(proto) is before) is fast
    feed(conn, encode(PING, b'p'))
    assert _waiting_in(proto) is not before
    assert rfc6455_fast.at_frame_start(proto)


@pytest.mark.parametrize('data, taken', [
    (encode(TEXT, b'ok') + encode(PING, b'p'), 8),                       # stops at a control frame
    (encode(TEXT, b'ok') + encode(TEXT, b'no', fin=False), 8),           # at a fragment
    (encode(TEXT, b'ok') + encode(TEXT, b'no', rsv=4), 8),               # at reserved bits
    (encode(TEXT, b'ok') + encode(TEXT, b'no', mask=None), 8),           # at an unmasked frame
    (encode(TEXT, b'ok') + encode(TEXT, b'\xff'), 8),                    # at bad UTF-8
    (encode(TEXT, b'ok') + encode(BINARY, b'x' * 65_536), 8),            # at a 64-bit length
    (encode(TEXT, b'ok') + encode(BINARY, b'x' * 1001), 8),              # over the limit
    (encode(TEXT, b'ok') + encode(BINARY, b'x' * 200)[:-1], 8),          # at a cut frame
    (encode(BINARY, b'x' * 1000), 1008),                                 # the limit itself
])
def test_where_the_fast_path_stops(data: bytes, taken: int) -> None:
    got: list[str | bytes] = []
    assert rfc6455_fast.take_messages(data, 1000, got.append) == taken
    assert got[:1] == (['ok'] if taken == 8 else [b'x' * 1000])


def test_frame_start_is_known_exactly(sockets: socket.socket) -> None:
    conn = connection(sockets, False, None)
    proto = conn._proto
    frame = encode(BINARY, b'x' * 50)
    for cut in (1, 2, 6, 30):       # inside the header, at the mask, inside the payload
        feed(conn, frame[:cut])
        assert not rfc6455_fast.at_frame_start(proto), cut
        feed(conn, frame[cut:])
        assert rfc6455_fast.at_frame_start(proto), cut
    feed(conn, encode(TEXT, b'a', fin=False))
    assert not rfc6455_fast.at_frame_start(proto)        # a fragmented message is under way
    feed(conn, encode(CONT, b'b'))
    assert rfc6455_fast.at_frame_start(proto)
    feed(conn, encode(CLOSE, close_payload(1000)))
    assert not rfc6455_fast.at_frame_start(proto)        # closing


def test_a_protocol_without_the_fields_takes_the_usual_path(sockets: socket.socket) -> None:
    conn = connection(sockets, True, None)
    assert conn._fast_frames and rfc6455_fast.supported(conn._proto)

    class OlderProtocol(ServerProtocol):
        """As websockets before 14: one size limit, no message/fragment pair."""
        def __getattribute__(self, name: str) -> Any:
            if name in ('max_message_size', 'max_fragment_size'):
                raise AttributeError(name)
            return super().__getattribute__(name)

    old = OlderProtocol(state=State.OPEN, max_size=None)
    assert not rfc6455_fast.supported(old)
    assert not rfc6455.WSConnection(sockets, old, rfc6455._Runtime(sockets, None))._fast_frames


def test_no_fast_path_with_compression(sockets: socket.socket) -> None:
    conn = connection(sockets, True, None, compression=True)
    assert not rfc6455_fast.at_frame_start(conn._proto)
    assert not rfc6455_fast.can_encode(conn._proto)


@pytest.mark.parametrize('size', [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
@pytest.mark.parametrize('opcode', [Opcode.TEXT, Opcode.BINARY])
def test_encoded_frames_are_the_protocols(size: int, opcode: Opcode) -> None:
    payload = bytes(i % 251 for i in range(size))
    expected = Frame(opcode, payload).serialize(mask=False)
    for kind in (bytes, bytearray, memoryview):
        assert rfc6455_fast.encode_frame(int(opcode), kind(payload)) == expected


@given(messages=st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=10))
@settings(FUZZ, max_examples=200)
def test_sent_bytes_are_the_protocols(messages: list[str | bytes]) -> None:
    written = []
    for fast in (True, False):
        server, client = socket.socketpair()
        with server, client:
            conn = connection(server, fast, None)
            conn.send_many(messages)
            conn.send('last')
            server.shutdown(socket.SHUT_WR)
            data = b''
            while chunk := client.recv(65536):
                data += chunk
            written.append(data)
    assert written[0] == written[1]
    assert written[0].endswith(b'\x81\x04last')
