"""A connection on gevent's sockets handed to the hub (``WSConnection.detach``):
the hub reads it in greenlets of its own, the server's socket object is left
with a dead socket, and the connection keeps the very descriptor it had.

Real ``WSConnection`` objects on gevent socket pairs with small buffers, in
greenlets; a handler that waits is a gevent event the test holds.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pytest

from engineio_wsgi import rfc6455
from engineio_wsgi.request import Request
from tests.unit.test_rfc6455_wire import handshake_environ
from tests.unit.wsframes import CLOSE, TEXT, FrameReader, client_key, close_payload, encode

pytestmark = pytest.mark.timeout(30)

CLOSE_TIMEOUT = 1.0


class Opened:
    def __init__(self, server: Any, client: Any) -> None:
        self.server = server
        self.client = client
        self.fd = server.fileno()
        self.conn = rfc6455.accept(Request(handshake_environ(server, client_key())),
                                   close_timeout=CLOSE_TIMEOUT)
        self.frames = FrameReader(client)
        assert self.frames.response_head().startswith(b'HTTP/1.1 101')


@pytest.fixture
def opened() -> Iterator[Opened]:
    server, client = gevent.socket.socketpair()
    for sock in (server, client):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    client.settimeout(10)
    yield Opened(server, client)
    server.close()
    client.close()


class Detached:
    """What the hub hands on: the messages, the end, and the greenlets they came in."""

    def __init__(self, conn: rfc6455.WSConnection, hold: gevent.event.Event | None = None) -> None:
        self.messages: list[Any] = []
        self.ends = 0
        self.greenlets: set[Any] = set()
        self.running = 0
        self.most_running = 0
        self.ended = gevent.event.Event()
        self.first = gevent.event.Event()
        self._hold = hold
        assert conn.detach(self.on_message, self.on_end)

    def on_message(self, message: Any) -> None:
        self.greenlets.add(gevent.getcurrent())
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.messages.append(message)
        self.first.set()
        if self._hold is not None:
            self._hold.wait(10)   # a handler that waits, as one on a lock would
        self.running -= 1

    def on_end(self) -> None:
        self.greenlets.add(gevent.getcurrent())
        self.ends += 1
        self.ended.set()


def test_the_hub_reads_the_messages_in_order_then_the_end_once(opened):
    detached = Detached(opened.conn)
    for n in range(3):
        opened.client.sendall(encode(TEXT, f'message {n}'.encode()))
    opened.client.sendall(encode(CLOSE, close_payload(1000)))
    assert detached.ended.wait(10), 'the end was not reported'
    assert detached.messages == ['message 0', 'message 1', 'message 2']
    assert detached.ends == 1
    assert gevent.getcurrent() not in detached.greenlets
    echo = opened.frames.frame()
    assert echo is not None and echo.opcode == CLOSE and echo.payload == close_payload(1000)
    assert opened.frames.frame() is None   # then the end of the stream


def test_the_connection_keeps_its_descriptor_and_the_server_object_a_dead_socket(opened):
    detached = Detached(opened.conn)
    assert opened.conn._sock.fileno() == opened.fd       # no duplicate, no new number
    assert opened.server.fileno() != opened.fd
    with pytest.raises(BrokenPipeError):
        opened.server.sendall(b'HTTP/1.1 101 Switching Protocols\r\n\r\n')
    assert opened.server.recv(10) == b''
    opened.server.close()    # what the server does next: only its own socket goes
    os.fstat(opened.fd)      # still open
    opened.conn.send('still here')
    frame = opened.frames.frame()
    assert frame is not None and frame.payload == b'still here'
    opened.client.sendall(encode(TEXT, b'and read'))
    with gevent.Timeout(10):
        while detached.messages != ['and read']:
            gevent.sleep(0.01)


def test_one_callback_at_a_time_while_a_handler_waits(opened):
    """Frames that come while the first message's handler waits are read
    after it returns, in order: never a second reader beside the first."""
    hold = gevent.event.Event()
    detached = Detached(opened.conn, hold)
    opened.client.sendall(encode(TEXT, b'first'))
    assert detached.first.wait(10)
    for n in range(5):
        opened.client.sendall(encode(TEXT, f'next {n}'.encode()))
    gevent.sleep(0)   # let the hub see the socket readable again
    assert detached.messages == ['first']
    hold.set()
    with gevent.Timeout(10):
        while len(detached.messages) < 6:
            gevent.sleep(0.01)
    assert detached.messages == ['first'] + [f'next {n}' for n in range(5)]
    assert detached.most_running == 1


def test_what_the_socket_does_not_take_is_written_by_the_hub_when_the_client_reads(opened):
    detached = Detached(opened.conn)
    sent = []
    for i in range(100):
        message = bytes([65 + i % 26]) * 65536
        sent.append(message)
        if not opened.conn.send_many([message], block=False):
            break
    else:
        pytest.fail('the socket never filled')
    got = [opened.frames.frame() for _ in sent]
    assert [f.payload for f in got] == sent   # type: ignore[union-attr]
    assert detached.ends == 0


def test_a_client_that_never_reads_is_cut_by_the_close_timeout(opened):
    detached = Detached(opened.conn)
    while opened.conn.send_many([b'x' * 65536], block=False):
        pass    # the socket is full; the client reads nothing more
    closer = gevent.spawn(opened.conn.close, 1001, 'going away')
    closer.join(5)
    assert closer.ready() and closer.successful(), 'the close waited on the client'
    assert detached.ended.wait(CLOSE_TIMEOUT + 5), 'the client was never cut'
    assert detached.ends == 1
    assert opened.conn.end_reason is rfc6455.LOCAL_CLOSE   # ours, ended by the cut
    # the descriptor is closed on the hub, after the watch let go of it
    with gevent.Timeout(5, AssertionError('the descriptor stayed open')):
        while _is_open(opened.fd):
            gevent.sleep(0.01)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
