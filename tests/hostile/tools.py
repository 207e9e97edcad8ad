"""Helpers for the hostile-input and fault tests.

- ``Bystanders``: a healthy polling session and a healthy WebSocket session,
  opened before the hostile act and kept alive by their own threads; ``check()``
  proves afterwards that both still echo, that new handshakes still work and
  that the server log has no traceback.
- ``RawWebSocket``: a WebSocket client on a bare socket that can send any
  bytes at all (bad opcodes, unmasked frames, lying lengths).
- ``stats(server)``: the echo app's ``/__stats`` (sessions, threads, greenlets,
  resident memory).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import socket
import struct
import threading
import time
from typing import Any

import websocket  # websocket-client

from tests.live import (
    CLOSE,
    MESSAGE,
    PING,
    LiveServer,
    Packet,
    PollingClient,
    decode_payload,
    http_request,
    wait_until,
)

_counter = itertools.count()


def stats(server: LiveServer) -> dict[str, int]:
    resp = http_request(server.port, 'GET', '/__stats', timeout=10)
    assert resp.status == 200, f'/__stats failed: {resp}'
    return resp.json()


def wait_sessions(server: LiveServer, at_most: int = 0, timeout: float = 15.0) -> dict[str, int]:
    """Wait until the server has at most ``at_most`` sessions; return its stats."""
    return wait_until(lambda: (lambda s: s if s['sessions'] <= at_most else None)(stats(server)),
                      timeout, interval=0.1,
                      message=f'{server.kind}: sessions down to {at_most}')


def ws_url(server: LiveServer, sid: str | None = None, extra: str = '') -> str:
    url = f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket'
    if sid:
        url += '&sid=' + sid
    return url + ('&' + extra if extra else '')


def open_websocket(server: LiveServer, timeout: float = 5.0) -> tuple[websocket.WebSocket, str]:
    """A WebSocket-only session; returns the connection and its sid."""
    ws = websocket.create_connection(ws_url(server), timeout=timeout, enable_multithread=True)
    first = ws.recv()
    assert isinstance(first, str) and first.startswith('0'), f'no open packet: {first!r}'
    return ws, json.loads(first[1:])['sid']


def traceback_free(server: LiveServer, since: int = 0, allowed: tuple[str, ...] = ()) -> None:
    """No traceback in the server log after offset ``since``, except tracebacks
    whose text contains one of ``allowed``."""
    text = server.log()[since:]
    chunks = text.split('Traceback (most recent call last)')[1:]
    for chunk in chunks:
        head = chunk[:4000]
        if not any(a in head for a in allowed):
            raise AssertionError(f'{server.kind}: traceback in the server log:\n'
                                 f'Traceback (most recent call last){head[:3000]}')


class PollingBystander:
    """A polling session polled continuously by a thread; pings answered."""

    def __init__(self, server: LiveServer) -> None:
        self.client = PollingClient(server, timeout=15)
        self.client.handshake()
        self.sid = self.client.sid
        self.messages: queue.Queue[str | bytes] = queue.Queue()
        self.closed: str | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        c = self.client
        while not self._stop:
            try:
                resp = c.get(timeout=15)
            except OSError as exc:
                self.closed = f'poll failed: {exc!r}'
                return
            if resp.status != 200:
                self.closed = f'poll answered {resp}'
                return
            for packet in decode_payload(resp.body):
                if packet.type == PING:
                    try:
                        c.pong()
                    except (OSError, AssertionError) as exc:
                        self.closed = f'pong failed: {exc!r}'
                        return
                elif packet.type == MESSAGE:
                    self.messages.put(packet.data)
                elif packet.type == CLOSE:
                    self.closed = 'close packet'
                    return

    def send(self, text: str) -> None:
        self.client.send(text)

    def stop(self) -> None:
        self._stop = True
        self.client.close()
        self._thread.join(5)


class WebSocketBystander:
    """A WebSocket-only session read continuously by a thread; pings answered."""

    def __init__(self, server: LiveServer) -> None:
        self.ws, self.sid = open_websocket(server)
        self.ws.settimeout(None)
        self.messages: queue.Queue[str | bytes] = queue.Queue()
        self.closed: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ws = self.ws
        while True:
            try:
                opcode, data = ws.recv_data()
            except Exception as exc:  # noqa: BLE001 - any end is recorded
                self.closed = self.closed or f'recv failed: {exc!r}'
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                text = data.decode()
                if text == '2':
                    try:
                        ws.send('3')
                    except Exception as exc:  # noqa: BLE001
                        self.closed = f'pong failed: {exc!r}'
                        return
                elif text.startswith('4'):
                    self.messages.put(text[1:])
                elif text.startswith('1'):
                    self.closed = 'close packet'
                    return
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                self.messages.put(bytes(data))
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                self.closed = self.closed or 'close frame'
                return

    def send(self, text: str) -> None:
        self.ws.send('4' + text)

    def stop(self) -> None:
        self.closed = 'stopped'
        try:
            self.ws.send('1')
            self.ws.close(timeout=0.5)
        except Exception:  # noqa: BLE001 - it may be gone
            pass
        self._thread.join(5)


def expect_message(messages: queue.Queue[Any], wanted: str | bytes, timeout: float) -> None:
    """``wanted`` arrives within ``timeout``; other messages are skipped."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f'{wanted!r} not received within {timeout} s; '
                                 f'got {len(seen)} others: {seen[-5:]!r}')
        try:
            got = messages.get(timeout=remaining)
        except queue.Empty:
            continue
        if got == wanted:
            return
        seen.append(got if len(got) < 40 else got[:40])


class Bystanders:
    """Healthy sessions opened before a hostile act; ``check()`` after it."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.log_offset = len(server.log())
        self.polling = PollingBystander(server)
        self.websocket = WebSocketBystander(server)
        self.checked = False

    def check(self, timeout: float = 5.0, allow_tracebacks: tuple[str, ...] = ()) -> None:
        """Both sessions still echo; new handshakes of both kinds succeed; no traceback."""
        assert self.server.alive(), f'{self.server.kind} server died:\n{self.server.log_tail()}'
        for bystander in (self.polling, self.websocket):
            assert bystander.closed is None, \
                f'healthy {type(bystander).__name__} {bystander.sid} ended: {bystander.closed}'
            token = f'alive-{os.getpid()}-{next(_counter)}'
            bystander.send(token)
            expect_message(bystander.messages, token, timeout)
        fresh = PollingClient(self.server)
        fresh.handshake()
        fresh.send('fresh')
        assert fresh.receive(1) == ['fresh']
        fresh.close()
        ws, _ = open_websocket(self.server)
        ws.send('4fresh')
        assert ws.recv() == '4fresh'
        ws.close(timeout=0.5)
        traceback_free(self.server, self.log_offset, allow_tracebacks)
        self.checked = True

    def stop(self) -> None:
        self.polling.stop()
        self.websocket.stop()


# --------------------------------------------------------------------------
# raw WebSocket


def ws_frame(opcode: int, payload: bytes = b'', *, fin: bool = True, rsv: int = 0,
             mask: bool = True, length: int | None = None) -> bytes:
    """One frame, with any header the test wants (``length`` may lie)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack('!H', n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack('!Q', n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


class RawWebSocket:
    """The WebSocket handshake on a bare socket, then any bytes at all."""

    def __init__(self, port: int, query: str = 'EIO=4&transport=websocket',
                 headers: dict[str, str] | None = None, timeout: float = 5.0,
                 rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(('127.0.0.1', port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f'GET /engine.io/?{query} HTTP/1.1', f'Host: 127.0.0.1:{port}',
                 'Upgrade: websocket', 'Connection: Upgrade', f'Sec-WebSocket-Key: {key}',
                 'Sec-WebSocket-Version: 13']
        lines += [f'{k}: {v}' for k, v in (headers or {}).items()]
        self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1'))
        self.buffer = b''
        while b'\r\n\r\n' not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b'\r\n\r\n')
        self.status_line = head.split(b'\r\n', 1)[0].decode('latin-1')
        self.status = int(self.status_line.split()[1]) if self.status_line else 0
        self.head = head

    def body(self) -> bytes:
        """The body of a refused (non-101) handshake, by its Content-Length."""
        for line in self.head.split(b'\r\n')[1:]:
            name, _, value = line.partition(b':')
            if name.strip().lower() == b'content-length':
                self._fill(int(value.strip()))
                return self.buffer[:int(value.strip())]
        return self.buffer

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may have cut us off already

    def send_text(self, text: str) -> None:
        self.send_raw(ws_frame(0x1, text.encode()))

    def _fill(self, need: int) -> bool:
        while len(self.buffer) < need:
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return False
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_frame(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next server frame; None at EOF or timeout."""
        if not self._fill(2):
            return None
        b1 = self.buffer[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if not self._fill(4):
                return None
            n = struct.unpack('!H', self.buffer[2:4])[0]
            pos = 4
        elif n == 127:
            if not self._fill(10):
                return None
            n = struct.unpack('!Q', self.buffer[2:10])[0]
            pos = 10
        assert not b1 & 0x80, 'server frames must not be masked'
        if not self._fill(pos + n):
            return None
        opcode = self.buffer[0] & 0x0F
        payload = self.buffer[pos:pos + n]
        self.buffer = self.buffer[pos + n:]
        return opcode, payload

    def read_until_end(self, timeout: float = 5.0) -> tuple[list[tuple[int, bytes]], bool]:
        """Frames until the server closes; (frames, saw_eof). Pings are answered."""
        frames = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            frame = self.read_frame()
            if frame is None:
                return frames, self._eof()
            frames.append(frame)
            if frame == (0x1, b'2'):
                self.send_text('3')
            elif frame[0] == 0x8:
                # answer the close like a client would (else the server waits for it)
                code = frame[1][:2] if len(frame[1]) >= 2 else b''
                self.send_raw(ws_frame(0x8, code))
        return frames, False

    def _eof(self) -> bool:
        try:
            self.sock.settimeout(0.5)
            return self.sock.recv(1) == b''
        except ConnectionResetError:
            return True
        except (TimeoutError, OSError):
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def close_code(frames: list[tuple[int, bytes]]) -> int | None:
    for opcode, payload in frames:
        if opcode == 0x8:
            return struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else 1005
    return None


def reset(sock: socket.socket) -> None:
    """Close with a TCP RST: the peer sees the connection vanish, no FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.close()
    except OSError:
        pass


__all__ = ['Bystanders', 'Packet', 'RawWebSocket', 'close_code', 'expect_message',
           'open_websocket', 'reset', 'stats', 'traceback_free', 'wait_sessions', 'ws_frame',
           'ws_url']
