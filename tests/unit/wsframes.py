"""RFC 6455 frames written and read by hand, for bytes-in/bytes-out tests.

The encoder and decoder here are written from the RFC, not imported from a
WebSocket library, so that the tests see the server's bytes independently
of the protocol core the library uses.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from typing import NamedTuple

GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Frame(NamedTuple):
    fin: bool
    rsv: int          # the three reserved bits, 0..7
    opcode: int
    payload: bytes


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode('ascii')).digest()).decode('ascii')


def encode(opcode: int, payload: bytes = b'', *, fin: bool = True, rsv: int = 0,
           mask: bytes | None = b'\x37\xfa\x21\x3d') -> bytes:
    """One frame as a client sends it (masked unless ``mask`` is None)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    size = len(payload)
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack('!H', size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack('!Q', size)
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if size < 4096 else _mask_fast(payload, mask)
    return head + mask + masked


def _mask_fast(payload: bytes, mask: bytes) -> bytes:
    repeated = (mask * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, 'big') ^ int.from_bytes(repeated, 'big')).to_bytes(len(payload), 'big')


def close_payload(code: int, reason: bytes = b'') -> bytes:
    return struct.pack('!H', code) + reason


class FrameReader:
    """Reads the server's side of a socket: the handshake response, then frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b''

    def _fill(self, size: int) -> bool:
        while len(self.buf) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def _take(self, size: int) -> bytes:
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def response_head(self) -> bytes:
        while b'\r\n\r\n' not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, f'EOF before the end of the response head: {self.buf!r}'
            self.buf += chunk
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        return head

    def frame(self) -> Frame | None:
        """The next frame; None at a clean end of stream. Server frames are
        never masked (RFC 6455 5.1)."""
        if not self._fill(2):
            assert not self.buf, f'EOF inside a frame header: {self.buf!r}'
            return None
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, 'the server masked a frame'
        size, used = b1 & 0x7F, 2
        if size == 126:
            assert self._fill(4)
            size, used = struct.unpack('!H', self.buf[2:4])[0], 4
        elif size == 127:
            assert self._fill(10)
            size, used = struct.unpack('!Q', self.buf[2:10])[0], 10
        assert self._fill(used + size), 'EOF inside a frame payload'
        self._take(used)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, self._take(size))

    def eof(self) -> bool:
        """True when the server has shut down its side with nothing more to read."""
        return not self.buf and self.sock.recv(1) == b''


def client_key() -> str:
    return base64.b64encode(os.urandom(16)).decode('ascii')


def split_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """The complete server frames at the start of ``data``, and what is left after them."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        size, used = b1 & 0x7F, 2
        if size == 126:
            if len(data) - pos < 4:
                break
            size, used = struct.unpack('!H', data[pos + 2:pos + 4])[0], 4
        elif size == 127:
            if len(data) - pos < 10:
                break
            size, used = struct.unpack('!Q', data[pos + 2:pos + 10])[0], 10
        if len(data) - pos < used + size:
            break
        frames.append(Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, data[pos + used:pos + used + size]))
        pos += used + size
    return frames, data[pos:]
