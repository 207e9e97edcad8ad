"""Tests of the packet codec: tables both ways, round trips, hostile input."""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engineio_wsgi import packets
from engineio_wsgi.packets import (
    RECORD_SEPARATOR,
    DecodeError,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)

OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = PacketType

try:
    binascii.a2b_base64('', strict_mode=True)
    HAVE_STRICT_MODE = True
except TypeError:  # Python 3.10
    HAVE_STRICT_MODE = False

# (packet, WebSocket frame): encode_packet gives the frame, decode_packet the packet.
FRAMES = [
    (Packet(OPEN, '{"sid":"abc","upgrades":[]}'), '0{"sid":"abc","upgrades":[]}'),
    (Packet(CLOSE, ''), '1'),
    (Packet(PING, ''), '2'),
    (Packet(PING, 'probe'), '2probe'),
    (Packet(PONG, ''), '3'),
    (Packet(PONG, 'probe'), '3probe'),
    (Packet(MESSAGE, 'hello'), '4hello'),
    (Packet(MESSAGE, ''), '4'),
    (Packet(MESSAGE, '4'), '44'),
    (Packet(MESSAGE, 'b'), '4b'),
    (Packet(MESSAGE, 'héllo wörld ✓'), '4héllo wörld ✓'),
    (Packet(MESSAGE, '😀 \U0010ffff'), '4😀 \U0010ffff'),
    (Packet(MESSAGE, '{"a": [1, 2]}'), '4{"a": [1, 2]}'),
    (Packet(MESSAGE, '"quoted"'), '4"quoted"'),
    (Packet(MESSAGE, '123'), '4123'),
    (Packet(MESSAGE, 'a\x1eb'), '4a\x1eb'),  # a WebSocket frame may carry \x1e
    (Packet(MESSAGE, ' \n\x00'), '4 \n\x00'),
    (Packet(UPGRADE, ''), '5'),
    (Packet(NOOP, ''), '6'),
    (Packet(MESSAGE, b'\x00\x01\xfe\xff'), b'\x00\x01\xfe\xff'),
    (Packet(MESSAGE, b'4hello'), b'4hello'),  # binary that looks like a packet
    (Packet(MESSAGE, b''), b''),
]

# (packet, frame) with b64=True: binary as 'b' + base64 in a text frame.
B64_FRAMES = [
    (Packet(MESSAGE, b'\x01\x02\x03'), 'bAQID'),
    (Packet(MESSAGE, b'\x01\x02'), 'bAQI='),
    (Packet(MESSAGE, b'\x01'), 'bAQ=='),
    (Packet(MESSAGE, b'\xfb\xff'), 'b+/8='),
    (Packet(MESSAGE, b''), 'b'),
    (Packet(MESSAGE, 'text'), '4text'),  # text is unaffected by b64
]

# (packets, polling payload) both ways.
PAYLOADS = [
    ([Packet(MESSAGE, 'hello')], b'4hello'),
    ([Packet(MESSAGE, '')], b'4'),
    ([Packet(MESSAGE, b'')], b'b'),
    ([Packet(MESSAGE, b'\x01\x02')], b'bAQI='),
    ([Packet(MESSAGE, ''), Packet(MESSAGE, '')], b'4\x1e4'),
    ([Packet(MESSAGE, b''), Packet(MESSAGE, b'')], b'b\x1eb'),
    ([Packet(MESSAGE, 'é😀')], '4é😀'.encode()),
    ([Packet(MESSAGE, '{"x": 1}'), Packet(MESSAGE, '[1]')], b'4{"x": 1}\x1e4[1]'),
    (
        [Packet(MESSAGE, 'a'), Packet(PING, 'probe'), Packet(MESSAGE, b'\x01\x02'),
         Packet(PONG, ''), Packet(CLOSE, '')],
        b'4a\x1e2probe\x1ebAQI=\x1e3\x1e1',
    ),
    ([Packet(OPEN, '{"sid":"x"}')], b'0{"sid":"x"}'),
    ([Packet(UPGRADE, ''), Packet(NOOP, '')], b'5\x1e6'),
]

# Payloads that must not decode, one bad part each.
BAD_PAYLOADS = [
    pytest.param(b'', id='empty body'),
    pytest.param(b'\x1e', id='only a separator'),
    pytest.param(b'4a\x1e', id='empty last packet'),
    pytest.param(b'\x1e4a', id='empty first packet'),
    pytest.param(b'7', id='type 7'),
    pytest.param(b'9hello', id='type 9'),
    pytest.param(b'x', id='letter type'),
    pytest.param(b'B', id='uppercase b'),
    pytest.param(b' 4', id='leading space'),
    pytest.param(b'-1', id='sign'),
    pytest.param('٤x'.encode(), id='non-ASCII digit'),
    pytest.param('４x'.encode(), id='fullwidth digit'),
    pytest.param(b'\x004', id='NUL type'),
    pytest.param(b'\xff', id='invalid UTF-8 only'),
    pytest.param(b'4\xff', id='invalid UTF-8 byte'),
    pytest.param(b'4\xc3', id='truncated UTF-8'),
    pytest.param(b'4\xc0\x80', id='overlong UTF-8'),
    pytest.param(b'4\xed\xa0\x80', id='UTF-8 encoded surrogate'),
    pytest.param(b'bQ', id='base64 bad length'),
    pytest.param(b'bQQ', id='base64 missing padding'),
    pytest.param(b'bQQ=', id='base64 short padding'),
    pytest.param(b'bQ===', id='base64 three pads'),
    pytest.param(b'bQUJD=', id='base64 pad after full group'),
    pytest.param(b'bQUJD====', id='base64 pad group'),
    pytest.param(b'b====', id='base64 only padding'),
    pytest.param(b'b=QQQ', id='base64 leading padding'),
    pytest.param(b'bQQ=Q', id='base64 padding inside'),
    pytest.param(b'bQQ==QQ==', id='base64 data after padding'),
    pytest.param(b'bQQ===', id='base64 excess padding'),
    pytest.param(b'bQU JD', id='base64 space'),
    pytest.param(b'bQUJD\n', id='base64 newline'),
    pytest.param(b'bQU-D', id='base64 URL-safe alphabet'),
    pytest.param('bQUJ\u00e9'.encode(), id='base64 non-ASCII'),
]

# WebSocket text frames that must not decode.
BAD_FRAMES = ['', '7', 'x', 'B', ' 4', '٤x', 'bQ', 'b!!!!', 'bQQ==\n', 'bQUJé']


@pytest.mark.parametrize(('pkt', 'frame'), FRAMES)
def test_encode_packet(pkt: Packet, frame: str | bytes) -> None:
    assert encode_packet(pkt) == frame
    assert type(encode_packet(pkt)) is type(frame)


@pytest.mark.parametrize(('pkt', 'frame'), FRAMES)
def test_decode_packet(pkt: Packet, frame: str | bytes) -> None:
    decoded = decode_packet(frame)
    assert decoded == pkt
    assert type(decoded.type) is PacketType
    assert type(decoded.data) is type(pkt.data)  # no JSON, no str/bytes mixing


@pytest.mark.parametrize(('pkt', 'frame'), B64_FRAMES)
def test_b64_frames(pkt: Packet, frame: str) -> None:
    assert encode_packet(pkt, b64=True) == frame
    assert decode_packet(frame) == pkt


def test_b64_frame_accepted_without_b64_mode() -> None:
    # Clients in forceBase64 mode send 'b...' text frames whatever the server does.
    assert decode_packet('bAQID') == Packet(MESSAGE, b'\x01\x02\x03')


def test_encode_no_data_is_like_empty_text() -> None:
    assert encode_packet(Packet(PING)) == '2'
    assert encode_packet(Packet(MESSAGE)) == '4'
    assert encode_payload([Packet(NOOP), Packet(MESSAGE, 'x')]) == b'6\x1e4x'


def test_decode_non_message_keeps_the_rest_as_text() -> None:
    assert decode_packet('1') == Packet(CLOSE, '')
    assert decode_packet('5probe') == Packet(UPGRADE, 'probe')
    assert decode_payload(b'6extra') == [Packet(NOOP, 'extra')]


def test_decode_packet_bytes_like() -> None:
    buffer = bytearray(b'\x01')
    assert decode_packet(buffer) == Packet(MESSAGE, b'\x01')  # type: ignore[arg-type]
    decoded = decode_packet(memoryview(b'ab'))  # type: ignore[arg-type]
    assert decoded == Packet(MESSAGE, b'ab')
    assert type(decoded.data) is bytes


@pytest.mark.parametrize('frame', BAD_FRAMES)
def test_decode_packet_rejects(frame: str) -> None:
    with pytest.raises(DecodeError):
        decode_packet(frame)


@pytest.mark.parametrize('frame', [None, 4, 4.0, ['4'], object()])
def test_decode_packet_rejects_other_types(frame: object) -> None:
    with pytest.raises(DecodeError):
        decode_packet(frame)  # type: ignore[arg-type]


@pytest.mark.parametrize(('pkts', 'body'), PAYLOADS)
def test_encode_payload(pkts: list[Packet], body: bytes) -> None:
    assert encode_payload(pkts) == body


@pytest.mark.parametrize(('pkts', 'body'), PAYLOADS)
def test_decode_payload(pkts: list[Packet], body: bytes) -> None:
    decoded = decode_payload(body)
    assert decoded == pkts
    assert [type(p.data) for p in decoded] == [type(p.data) for p in pkts]
    assert all(type(p.type) is PacketType for p in decoded)


@pytest.mark.parametrize(('pkts', 'body'), PAYLOADS)
def test_decode_payload_other_input_types(pkts: list[Packet], body: bytes) -> None:
    assert decode_payload(bytearray(body)) == pkts  # type: ignore[arg-type]
    assert decode_payload(memoryview(body)) == pkts  # type: ignore[arg-type]
    assert decode_payload(body.decode()) == pkts  # type: ignore[arg-type]


@pytest.mark.parametrize('body', BAD_PAYLOADS)
def test_decode_payload_rejects(body: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_payload(body)
    assert isinstance(info.value, ValueError)
    # Each bad payload holds at most one good packet, before the bad part.
    assert info.value.packets == ([Packet(MESSAGE, 'a')] if body == b'4a\x1e' else [])


@pytest.mark.parametrize('body', [None, 4, ['4a'], object()])
def test_decode_payload_rejects_other_types(body: object) -> None:
    with pytest.raises(DecodeError):
        decode_payload(body)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ('body', 'good'),
    [
        (b'4a\x1e4b\x1e9', ['a', 'b']),
        (b'4a\x1e\x1e4b', ['a']),
        (b'4a\x1e4\xff\x1e4c', ['a']),  # bad UTF-8 in the middle
        (b'4\xc3\xa9\x1e4\xff', ['é']),  # good multi-byte text, then bad UTF-8
        (b'4a\x1ebQ=\x1e4c', ['a']),
        (b'9\x1e4a', []),
        (b'\xff\x1e4a', []),
        (b'4a\x1e7\x1e4\xff', ['a']),  # the first error wins
    ],
)
def test_decode_error_keeps_good_packets(body: bytes, good: list[str]) -> None:
    with pytest.raises(DecodeError) as info:
        decode_payload(body)
    assert info.value.packets == [Packet(MESSAGE, text) for text in good]


def test_decode_error_does_not_echo_input() -> None:
    for body in (b'bSECRET!', b'zSECRET', b'4SECRET\xff'):
        with pytest.raises(DecodeError) as info:
            decode_payload(body)
        assert 'SECRET' not in str(info.value)


def test_decode_error_defaults() -> None:
    exc = DecodeError('bad')
    assert exc.packets == []
    assert str(exc) == 'bad'
    assert isinstance(exc, ValueError)


@pytest.mark.parametrize('text', ['\x1e', 'a\x1e', '\x1eb', 'a\x1eb'])
def test_encode_payload_refuses_record_separator(text: str) -> None:
    with pytest.raises(ValueError, match='x1e'):
        encode_payload([Packet(MESSAGE, 'ok'), Packet(MESSAGE, text)])


def test_encode_refuses_binary_on_other_types() -> None:
    with pytest.raises(ValueError):
        encode_packet(Packet(PING, b'probe'))
    with pytest.raises(ValueError):
        encode_payload([Packet(CLOSE, b'')])


def test_encode_payload_refuses_lone_surrogate() -> None:
    with pytest.raises(ValueError):
        encode_payload([Packet(MESSAGE, '\ud800')])


# -- properties ----------------------------------------------------------------

text_types = st.sampled_from(list(PacketType))
binary_packets = st.builds(Packet, st.just(MESSAGE), st.binary())
frame_packets = st.builds(Packet, text_types, st.text()) | binary_packets
payload_packets = (
    st.builds(Packet, text_types, st.text().filter(lambda s: '\x1e' not in s))
    | binary_packets
)


@given(frame_packets, st.booleans())
def test_packet_round_trip(pkt: Packet, b64: bool) -> None:
    frame = encode_packet(pkt, b64=b64)
    assert decode_packet(frame) == pkt
    # With b64 every frame is text; without, binary data means a binary frame.
    assert isinstance(frame, bytes) == (isinstance(pkt.data, bytes) and not b64)


@given(st.lists(payload_packets, min_size=1))
def test_payload_round_trip(pkts: list[Packet]) -> None:
    body = encode_payload(pkts)
    assert body.count(b'\x1e') == len(pkts) - 1
    assert decode_payload(body) == pkts


@given(st.lists(payload_packets, min_size=1))
def test_payload_is_the_joined_text_frames(pkts: list[Packet]) -> None:
    frames = [encode_packet(p, b64=True) for p in pkts]
    assert all(isinstance(frame, str) for frame in frames)
    joined = RECORD_SEPARATOR.join(frames)  # type: ignore[arg-type]
    assert encode_payload(pkts) == joined.encode()


@given(st.binary() | st.text())
def test_decode_packet_raises_only_decode_error(frame: bytes | str) -> None:
    try:
        pkt = decode_packet(frame)
    except DecodeError as exc:
        assert isinstance(frame, str)  # any bytes is a valid binary message
        assert exc.packets == []
    else:
        assert type(pkt.type) is PacketType
        assert isinstance(pkt.data, (str, bytes))


# Text made of what payloads are built from, so decoding often gets far.
payload_text = st.text(alphabet='0123456789bB4Q=+/AU\x1e\x00é😀 ')


@given(st.binary() | st.text() | payload_text | payload_text.map(str.encode))
def test_decode_payload_raises_only_decode_error(body: bytes | str) -> None:
    try:
        pkts = decode_payload(body)  # type: ignore[arg-type]
    except DecodeError as exc:
        assert all(type(p) is Packet for p in exc.packets)
    else:
        assert pkts
        assert all(type(p.type) is PacketType for p in pkts)


@given(
    st.lists(payload_packets),
    st.sampled_from([b'', b'\xff', b'9', b'x', b'bQ', b'b!!!!', b'4\xed\xa0\x80']),
    st.lists(payload_packets),
)
def test_decode_error_packets_are_those_before(
    before: list[Packet], bad: bytes, after: list[Packet]
) -> None:
    parts = [encode_payload([p]) for p in before] + [bad]
    parts += [encode_payload([p]) for p in after]
    with pytest.raises(DecodeError) as info:
        decode_payload(b'\x1e'.join(parts))
    assert info.value.packets == before


# Standard base64 in its canonical layout: whole groups of four, at most two pads.
CANONICAL_BASE64 = re.compile(
    r'(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?'
)
# Strings near valid base64, where lenient decoders differ from strict ones.
near_base64 = st.text(alphabet='QUJDab09+/=-_ \n!é', max_size=13)
b64_decoders = [
    pytest.param(
        packets._b64decode_strict, id='strict_mode',
        marks=pytest.mark.skipif(not HAVE_STRICT_MODE, reason='Python 3.10'),
    ),
    pytest.param(packets._b64decode_checked, id='checked'),
]


@pytest.mark.parametrize('decode', b64_decoders)
@pytest.mark.parametrize('text', ['QUJD=', 'QUJD==', 'QUJD===', 'QUJD====', '====', '=',
                                  'QQ===', 'QUI==', 'Q===', 'QUJDQ==='])
def test_b64_refuses_extra_padding(decode: Callable[[str], bytes], text: str) -> None:
    with pytest.raises(ValueError):
        decode(text)


@pytest.mark.parametrize('decode', b64_decoders)
@given(text=near_base64 | st.text(max_size=13))
def test_b64_accepts_only_canonical_layout(
    decode: Callable[[str], bytes], text: str
) -> None:
    try:
        got: bytes | None = decode(text)
    except ValueError:
        got = None
    if CANONICAL_BASE64.fullmatch(text):
        assert got == binascii.a2b_base64(text)
    else:
        assert got is None


@given(st.binary())
def test_b64_decoders_take_what_the_encoder_gives(data: bytes) -> None:
    text = binascii.b2a_base64(data, newline=False).decode()
    assert packets._b64decode_checked(text) == data
    assert decode_packet('b' + text) == Packet(MESSAGE, data)
