"""Engine.IO v4 packet codec, with no I/O.

A packet is a type and its data. Text data stays ``str`` and binary data stays
``bytes``: the codec never looks inside a message (no JSON guessing).

Over WebSocket every packet is one frame: a text frame is the type digit then
the data, a binary frame is a binary message as is. A polling body (payload)
joins text packets with the record separator ``\\x1e``; a binary message in a
payload, or in a text frame when the client asked for base64, is ``b``
followed by standard base64.

Decoding is strict and raises only :class:`DecodeError`, whatever it is given.
"""

from __future__ import annotations

import binascii
import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from .errors import EngineIOError

__all__ = [
    'RECORD_SEPARATOR', 'DecodeError', 'Packet', 'PacketType',
    'decode_packet', 'decode_payload', 'encode_packet', 'encode_payload',
]

RECORD_SEPARATOR = '\x1e'


class PacketType(enum.IntEnum):
    """Packet types; the value is the digit that starts a text packet."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class Packet(NamedTuple):
    """One packet. ``data`` None means no data; ``bytes`` only for MESSAGE."""

    type: PacketType
    data: str | bytes | None = None


class DecodeError(EngineIOError, ValueError):
    """Undecodable input. The message never repeats the input.

    For a payload, ``packets`` holds the packets decoded before the bad one:
    they were valid and still reach the application.
    """

    def __init__(self, message: str, packets: list[Packet] | None = None) -> None:
        super().__init__(message)
        self.packets: list[Packet] = packets if packets is not None else []


# Indexed by the packet type, so encoding needs no str(int) per packet.
_DIGITS = tuple(str(ptype.value) for ptype in PacketType)
_TYPES = {str(ptype.value): ptype for ptype in PacketType}
_MESSAGE = PacketType.MESSAGE
# Builds a Packet without NamedTuple's Python-level __new__: a third of the
# cost of decoding a short message.
_packet = tuple.__new__
_B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
# str.translate with this table deletes the alphabet: whatever is left is invalid.
_DELETE_B64_ALPHABET = dict.fromkeys(map(ord, _B64_ALPHABET))


def _b64decode_strict(text: str) -> bytes:
    """Decode standard base64, refusing anything but its canonical layout."""
    # strict_mode refuses bad characters and misplaced padding, yet takes extra
    # '=' after a complete group ('QUJD=', 'QUJD===='): refuse those as well.
    if len(text) % 4 or text.endswith('==='):
        raise binascii.Error('invalid base64')
    return binascii.a2b_base64(text, strict_mode=True)


def _b64decode_checked(text: str) -> bytes:
    """Same verdicts as ``_b64decode_strict``, for Python 3.10 (no strict_mode).

    Padding only at the end, at most two, length a multiple of four, nothing
    outside the alphabet (the lenient decoder would skip such characters).
    """
    data = text.rstrip('=')
    if (len(text) % 4 or len(text) - len(data) > 2
            or data.translate(_DELETE_B64_ALPHABET)):
        raise binascii.Error('invalid base64')
    return binascii.a2b_base64(text)


_b64decode: Callable[[str], bytes] = _b64decode_strict
try:
    _b64decode('')
except TypeError:  # pragma: no cover - Python 3.10 has no strict_mode
    _b64decode = _b64decode_checked


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode('ascii')


def encode_packet(pkt: Packet, *, b64: bool = False) -> str | bytes:
    """Encode one packet as a WebSocket frame: ``str`` for a text frame.

    A binary message is returned as ``bytes`` (a binary frame), or with
    ``b64`` as the text frame ``'b' + base64``.
    """
    data = pkt.data
    if isinstance(data, bytes):
        if pkt.type != _MESSAGE:
            raise ValueError('only a message packet can carry binary data')
        return 'b' + _b64encode(data) if b64 else data
    return _DIGITS[pkt.type] + data if data else _DIGITS[pkt.type]


def encode_payload(packets: Sequence[Packet]) -> bytes:
    """Encode packets as one polling payload (UTF-8).

    Raises ValueError when text data contains the record separator, which a
    v4 payload has no way to escape (or is not valid Unicode: lone surrogates).
    """
    parts = []
    for ptype, data in packets:
        if isinstance(data, bytes):
            if ptype != _MESSAGE:
                raise ValueError('only a message packet can carry binary data')
            parts.append('b' + _b64encode(data))
        elif data:
            if RECORD_SEPARATOR in data:
                raise ValueError('text with \\x1e cannot be sent in a polling payload')
            parts.append(_DIGITS[ptype] + data)
        else:
            parts.append(_DIGITS[ptype])
    return RECORD_SEPARATOR.join(parts).encode('utf-8')


def _decode_text(text: str) -> Packet:
    """Decode one text packet: a type digit and data, or ``b`` and base64."""
    if not text:
        raise DecodeError('empty packet')
    first = text[0]
    if first == '4':  # by far the most common packet: skip the table
        return _packet(Packet, (_MESSAGE, text[1:]))
    if first == 'b':
        try:
            return _packet(Packet, (_MESSAGE, _b64decode(text[1:])))
        except ValueError:  # binascii.Error, or non-ASCII text
            raise DecodeError('invalid base64') from None
    ptype = _TYPES.get(first)
    if ptype is None:
        raise DecodeError('unknown packet type')
    return _packet(Packet, (ptype, text[1:]))


def decode_packet(frame: str | bytes) -> Packet:
    """Decode one WebSocket frame: ``bytes`` is a binary message as is."""
    if isinstance(frame, str):
        return _decode_text(frame)
    if isinstance(frame, bytes):
        # An empty binary frame is a valid, empty binary message.
        return _packet(Packet, (_MESSAGE, frame))
    try:  # bytearray, memoryview
        return _packet(Packet, (_MESSAGE, bytes(memoryview(frame))))
    except TypeError:
        raise DecodeError('frame is neither text nor bytes') from None


def _utf8_parts(body: bytes) -> Iterator[str]:
    # Only used once the whole body failed to decode, to find which part is bad.
    for raw in body.split(b'\x1e'):
        try:
            yield raw.decode('utf-8')
        except UnicodeDecodeError:
            raise DecodeError('invalid UTF-8') from None


def _decode_parts(parts: Iterable[str]) -> list[Packet]:
    packets: list[Packet] = []
    try:
        for part in parts:
            packets.append(_decode_text(part))
    except DecodeError as exc:
        exc.packets = packets
        raise
    return packets


def decode_payload(body: bytes) -> list[Packet]:
    """Decode a polling payload (a POST body) into its packets.

    On the first bad packet raises DecodeError whose ``packets`` are the good
    packets before it. Also takes ``bytearray``, ``memoryview``, and ``str``
    (text already decoded).
    """
    try:
        # \x1e never occurs inside a multi-byte UTF-8 sequence, so decoding the
        # whole body then splitting equals splitting then decoding each part.
        text = body.decode('utf-8')
    except UnicodeDecodeError:
        return _decode_parts(_utf8_parts(bytes(body)))
    except AttributeError:  # a str, a memoryview, or not bytes at all
        if isinstance(body, memoryview):
            return decode_payload(body.tobytes())
        if not isinstance(body, str):
            raise DecodeError('payload is neither text nor bytes') from None
        text = body
    if RECORD_SEPARATOR not in text:
        return [_decode_text(text)]  # the usual POST: one packet
    return _decode_parts(text.split(RECORD_SEPARATOR))
