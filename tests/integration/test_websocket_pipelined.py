"""Bytes a client pipelines right behind its WebSocket handshake request, before
it has read the 101, are not lost on any stack, and garbage sent that way
closes the connection like any bad frame.

Such bytes are read ahead by the server together with the request head: they
sit in gunicorn's parser buffer, or in the buffered reader of werkzeug's or
gevent.pywsgi's request handler, not in the socket. The client here is a raw
socket that sends the handshake and the first frames in one ``sendall``.
"""

from __future__ import annotations

import base64
import os
import socket

import pytest

from tests.hostile.tools import RawWebSocket, close_code, ws_frame
from tests.integration.test_upgrade_edges import echo_on, text_frame, ws_query
from tests.live import KINDS, LiveServer, PollingClient


@pytest.fixture(scope='module', params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def server(kind: str, server_pool) -> LiveServer:
    return server_pool.get(kind, 'normal')


class Pipelined(RawWebSocket):
    """The handshake request and the first frames in one ``sendall``."""

    def __init__(self, port: int, query: str, frames: bytes) -> None:
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f'GET /engine.io/?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n'
                'Upgrade: websocket\r\nConnection: Upgrade\r\n'
                f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n')
        self.sock.sendall(head.encode('ascii') + frames)
        self.buffer = b''
        while b'\r\n\r\n' not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        head_bytes, _, self.buffer = self.buffer.partition(b'\r\n\r\n')
        self.head = head_bytes
        self.status_line = head_bytes.split(b'\r\n', 1)[0].decode('latin-1')
        self.status = int(self.status_line.split()[1]) if self.status_line else 0


@pytest.fixture
def pipelined(server: LiveServer):
    opened: list[Pipelined] = []

    def open_one(query: str, frames: bytes) -> Pipelined:
        raw = Pipelined(server.port, query, frames)
        opened.append(raw)
        return raw
    yield open_one
    for raw in opened:
        raw.close()


def test_frames_pipelined_behind_the_handshake_are_read(pipelined):
    frames = ws_frame(0x1, b'4one') + ws_frame(0x1, b'4two') + ws_frame(0x2, b'\x03')
    raw = pipelined(ws_query(), frames)
    assert raw.status == 101, raw.head
    assert text_frame(raw)[0] == '0'
    assert text_frame(raw) == '4one'
    assert text_frame(raw) == '4two'
    raw.sock.settimeout(5)
    assert raw.read_frame() == (0x2, b'\x03')
    echo_on(raw, 'and afterwards')


def test_probe_pipelined_behind_the_upgrade_request(server, pipelined):
    polling = PollingClient(server)
    polling.handshake()
    raw = pipelined(ws_query(polling.sid), ws_frame(0x1, b'2probe'))
    assert raw.status == 101, raw.head
    assert text_frame(raw) == '3probe'
    raw.send_text('5')
    echo_on(raw, 'upgraded')


@pytest.mark.parametrize('garbage', [
    ws_frame(0x3, b'x'),                                   # reserved opcode
    ws_frame(0x1, b'4unmasked', mask=False),
    b'\xff' * 16,
], ids=['reserved-opcode', 'unmasked', 'junk'])
def test_garbage_pipelined_behind_the_handshake_closes_the_connection(pipelined, garbage):
    raw = pipelined(ws_query(), garbage)
    assert raw.status == 101, raw.head
    frames, eof = raw.read_until_end(timeout=5)
    assert eof, f'the connection stayed open after garbage: {frames!r}'
    assert close_code(frames) == 1002, frames     # protocol error
    # nothing but the open packet and the close frame
    assert [f[0] for f in frames] == [0x1, 0x8] and frames[0][1].startswith(b'0'), frames
