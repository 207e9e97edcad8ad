"""A connection handed to the I/O loop (``WSConnection.detach``): the loop
reads it, the server's own descriptor names a dead socket, and what was
queued while it moved is written.

Real ``WSConnection`` objects on socket pairs with small buffers; the
interleaving of a send with the move is forced by holding the write lock.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from tests.live import wait_until
from tests.unit.test_rfc6455_wire import CLOSE_TIMEOUT, Pair, open_pair
from tests.unit.wsframes import CLOSE, TEXT, encode

pytestmark = pytest.mark.timeout(30)


class Detached:
    """What the loop hands on: the messages, and the end (with its thread)."""

    def __init__(self, pair: Pair) -> None:
        self.messages: list[Any] = []
        self.ends: list[int] = []
        self.threads: set[int] = set()
        self.ended = threading.Event()
        assert pair.conn.detach(self.on_message, self.on_end)

    def on_message(self, message: Any) -> None:
        self.threads.add(threading.get_ident())
        self.messages.append(message)

    def on_end(self) -> None:
        self.threads.add(threading.get_ident())
        self.ends.append(1)
        self.ended.set()


def test_the_loop_reads_the_messages_in_order_then_the_end_once(small_sockets):
    pair = open_pair(small_sockets)
    detached = Detached(pair)
    for n in range(3):
        pair.peer.send(encode(TEXT, f'message {n}'.encode()))
    pair.peer.send(encode(CLOSE, b'\x03\xe8'))
    assert detached.ended.wait(10), 'the end was not reported'
    assert detached.messages == ['message 0', 'message 1', 'message 2']
    assert detached.ends == [1]
    assert threading.get_ident() not in detached.threads
    echo = pair.peer.frame()
    assert echo is not None and echo.opcode == CLOSE and echo.payload[:2] == b'\x03\xe8'
    assert pair.peer.frame() is None   # then the end of the stream


def test_the_servers_descriptor_names_a_dead_socket_and_the_connection_lives_on(small_sockets):
    server, _client = small_sockets
    pair = open_pair(small_sockets)
    detached = Detached(pair)
    with pytest.raises(BrokenPipeError):
        server.sendall(b'HTTP/1.1 101 Switching Protocols\r\n\r\n')
    server.close()   # what the server does next: only its own socket goes
    pair.conn.send('still here')
    frame = pair.peer.frame()
    assert frame is not None and frame.payload == b'still here'
    pair.peer.send(encode(TEXT, b'and read'))
    wait_until(lambda: detached.messages == ['and read'], message='the message was read')


def test_a_frame_queued_while_the_connection_moves_is_written(small_sockets):
    pair = open_pair(small_sockets)
    conn = pair.conn
    conn._write_lock.acquire()   # a writer's turn, held while the move starts
    mover = threading.Thread(target=Detached, args=(pair,))
    try:
        mover.start()
        # the turn is taken: the frame is left to whoever holds it
        assert conn.send_many(['queued meanwhile'], block=False) is False
    finally:
        conn._write_lock.release()
    mover.join(10)
    assert not mover.is_alive()
    frame = pair.peer.frame()
    assert frame is not None and frame.payload == b'queued meanwhile'


def test_a_close_to_a_client_that_never_answers_is_cut_at_the_timeout(small_sockets):
    pair = open_pair(small_sockets)
    detached = Detached(pair)
    closer = threading.Thread(target=pair.conn.close)
    closer.start()
    closer.join(CLOSE_TIMEOUT / 2)
    assert not closer.is_alive(), 'close() waited on the client'
    assert detached.ended.wait(CLOSE_TIMEOUT + 5), 'the close was not cut at its timeout'
    assert detached.ends == [1]


def test_a_client_gone_before_the_move_ends_once_and_nothing_fails(caplog):
    """The loop may find the end before ``detach`` returned: the watch is the
    connection's before the loop can call back."""
    for _ in range(20):
        server, client = socket.socketpair()
        client.settimeout(10)
        try:
            pair = open_pair((server, client))
            client.close()   # gone right after the 101
            detached = Detached(pair)
            assert detached.ended.wait(10), 'the end was not reported'
            assert detached.ends == [1]
        finally:
            server.close()
            client.close()
    assert not [r for r in caplog.records if r.levelname in ('ERROR', 'CRITICAL')], caplog.text


class _Ends:
    def __init__(self) -> None:
        self.ended = threading.Event()

    def on_message(self, message: Any) -> None:
        pass

    def on_end(self) -> None:
        self.ended.set()


def _watches_of(conn: Any) -> list[Any]:
    """The loop's registered watches that still call ``conn``'s reader."""
    from engineio_wsgi import ioloop
    loop = ioloop.for_threads()
    wait_until(lambda: not loop._posted, message='the loop took what was posted')
    return [key.data for key in list(loop._selector.get_map().values())
            if key.data is not None and getattr(key.data.callback, '__self__', None) is conn]


def test_an_end_read_before_the_watch_is_armed_leaves_no_watch(small_sockets, monkeypatch):
    """The client left (EOF) right after its handshake and the loop's first
    read finds the end before the read watch is armed (forced: the arming
    waits for the end): the connection ends once, its descriptor closes, and
    no watch is left to read a closed or reused descriptor."""
    from engineio_wsgi import ioloop
    _server, client = small_sockets
    pair = open_pair(small_sockets)
    ends = _Ends()
    original = ioloop.SelectorLoop.arm

    def late(self: Any, watch: Any) -> None:
        assert ends.ended.wait(10)
        original(self, watch)

    monkeypatch.setattr(ioloop.SelectorLoop, 'arm', late)
    client.shutdown(socket.SHUT_WR)
    assert pair.conn.detach(ends.on_message, ends.on_end)
    wait_until(lambda: pair.conn._sock.fileno() == -1, message='the descriptor closed')
    assert _watches_of(pair.conn) == []
