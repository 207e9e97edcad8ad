"""The common WebSocket frames without the protocol core's generators.

An echo of a 100-byte message through the ``websockets`` sans-I/O protocol
runs a chain of generators (``receive_data``, ``parse``, ``Frame.parse``,
``read_exact``) and builds a ``Frame`` each way; that is a good part of the
CPU a message costs. Most traffic is one small, complete, unfragmented data
frame at a time, so :mod:`engineio_wsgi.rfc6455` handles exactly those here:

- incoming: a run of whole frames at the start of the received bytes that are
  FIN, without reserved bits, text or binary, masked, with a 7- or 16-bit
  length within the size limit (and, for text, valid UTF-8), read while the
  protocol sits between two frames with nothing buffered, no fragmented
  message under way, no extension active and no debug logging. For such a
  frame the protocol changes no state and writes nothing: skipping it leaves
  the protocol exactly as parsing it would. The first byte of anything else
  (a control frame, a fragment, a 64-bit length, an incomplete frame, bad
  UTF-8, an error) and all that follows go to the protocol, which then does
  what it always does.
- outgoing: a whole text or binary frame, unmasked (the server's), while the
  connection is open with no extension, no fragmented message being sent and
  no debug logging: the same bytes ``Frame.serialize`` writes, without the
  ``Frame``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from websockets.protocol import OPEN, Protocol
from websockets.streams import StreamReader

try:   # the C version, as websockets itself uses when it is built
    from websockets.speedups import apply_mask
except ImportError:   # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask

__all__ = ['at_frame_start', 'can_encode', 'encode_frame', 'size_limit', 'supported',
           'take_messages']

_AT_EOF = StreamReader.at_eof.__code__
_PARSE = Protocol.parse.__code__
_HEAD16 = struct.Struct('!BBH')
_LEN16 = struct.Struct('!H')

# FIN set, reserved bits clear, text (0x1) or binary (0x2)
_FIN_TEXT = 0x81
_FIN_BINARY = 0x82


_FIELDS = ('state', 'current_size', 'extensions', 'debug', 'reader', 'parser',
           'max_message_size', 'max_fragment_size', 'expect_continuation_frame')


def supported(proto: Any) -> bool:
    """True when ``proto`` keeps the fields read here (websockets before its
    message/fragment size pair lacks some: its connections take the usual path)."""
    return all(hasattr(proto, name) for name in _FIELDS)


def at_frame_start(proto: Any) -> bool:
    """True when ``proto`` is open, idle between two frames, and would treat a
    plain data frame as the fast path does (no state change, no output)."""
    if (proto.state is not OPEN or proto.current_size is not None or proto.extensions
            or proto.debug or proto.reader.buffer or proto.reader.eof):
        return False
    # The parser suspends in StreamReader.at_eof only between frames (inside a
    # frame it waits in read_exact); its caller must be Protocol.parse, not
    # the discard() that follows a close.
    gen = proto.parser
    parent = None
    while True:
        inner = getattr(gen, 'gi_yieldfrom', None)
        if inner is None:
            break
        parent, gen = gen, inner
    return (parent is not None and getattr(gen, 'gi_code', None) is _AT_EOF
            and parent.gi_code is _PARSE)


def size_limit(proto: Any) -> int | None:
    """The largest payload the protocol accepts for a first frame."""
    limit = proto.max_message_size
    fragment = proto.max_fragment_size
    if fragment is not None and (limit is None or fragment < limit):
        limit = fragment
    return limit


def take_messages(data: bytes, limit: int | None,
                  deliver: Callable[[str | bytes], None]) -> int:
    """Deliver the complete simple frames at the start of ``data``.

    Returns how many bytes they took: the rest, from a frame's first byte, is
    the protocol's. ``limit`` is the largest payload allowed (None: any).
    """
    pos = 0
    end = len(data)
    while end - pos >= 6:           # the shortest masked frame
        first = data[pos]
        if first != _FIN_TEXT and first != _FIN_BINARY:
            break
        second = data[pos + 1]
        if not second & 0x80:       # unmasked: the protocol fails it
            break
        length = second & 0x7F
        if length == 126:
            if end - pos < 8:
                break
            (length,) = _LEN16.unpack_from(data, pos + 2)
            start = pos + 8
        elif length == 127:
            break
        else:
            start = pos + 6
        stop = start + length
        if stop > end or (limit is not None and length > limit):
            break
        payload = apply_mask(data[start:stop], data[start - 4:start])
        if first == _FIN_TEXT:
            try:
                text = payload.decode('utf-8')
            except UnicodeDecodeError:
                break               # the usual path fails the connection (1007)
            deliver(text)
        else:
            deliver(payload)
        pos = stop
    return pos


def can_encode(proto: Any) -> bool:
    """True when the protocol would send a data frame as :func:`encode_frame` does."""
    return (proto.state is OPEN and not proto.expect_continuation_frame
            and not proto.extensions and not proto.debug)


def encode_frame(opcode: int, payload: bytes | bytearray | memoryview) -> bytes:
    """One whole unmasked frame (FIN set), as ``Frame.serialize`` writes it."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, length))
    elif length < 65536:
        head = _HEAD16.pack(0x80 | opcode, 126, length)
    else:
        head = struct.pack('!BBQ', 0x80 | opcode, 127, length)
    return head + payload
