"""engineio_wsgi.rfc6455 on gevent's cooperative sockets, in greenlets.

After a recv() that emptied the socket, the reader waits on gevent's read
watcher before its next recv() (no EAGAIN round per message); these tests
cover that wait: messages that come one at a time, and a socket closed by
another greenlet while the reader waits.
"""

from __future__ import annotations

import gevent
import gevent.socket
import pytest

from engineio_wsgi import rfc6455
from engineio_wsgi.request import Request
from tests.unit.test_rfc6455_wire import handshake_environ
from tests.unit.wsframes import CLOSE, TEXT, Frame, FrameReader, client_key, close_payload, encode

pytestmark = pytest.mark.timeout(30)


def open_conn() -> tuple[rfc6455.WSConnection, gevent.socket.socket, FrameReader]:
    server, client = gevent.socket.socketpair()
    conn = rfc6455.accept(Request(handshake_environ(server, client_key())), close_timeout=1)
    reader = FrameReader(client)
    assert reader.response_head().startswith(b'HTTP/1.1 101')
    return conn, client, reader


def test_gevent_sockets_have_the_read_watcher() -> None:
    """The wait relies on gevent's socket internals; without them receive()
    falls back to plain recv() (slower, same behaviour)."""
    server, client = gevent.socket.socketpair()
    with server, client:
        assert rfc6455._can_wait_read(server)


def test_messages_one_at_a_time() -> None:
    conn, client, frames = open_conn()
    assert conn._wait_read is True

    def echo() -> None:
        while (message := conn.receive()) is not None:
            conn.send(message)

    server = gevent.spawn(echo)
    for i in range(50):
        # the next frame goes out only after the answer: the reader found the
        # socket empty each time and waited for it
        client.sendall(encode(TEXT, f'm{i}'.encode()))
        assert frames.frame() == Frame(True, 0, TEXT, f'm{i}'.encode())
    client.sendall(encode(CLOSE, close_payload(1000)))
    assert frames.frame() == Frame(True, 0, CLOSE, close_payload(1000))
    server.join(5)
    assert server.ready() and server.successful()
    assert conn.end_reason == rfc6455.PEER_CLOSE
    client.close()


def test_socket_closed_while_the_reader_waits() -> None:
    conn, client, frames = open_conn()
    got: list[object] = []

    def read() -> None:
        got.append(conn.receive())
        got.append(conn.receive())     # waits on the drained socket

    reader = gevent.spawn(read)
    client.sendall(encode(TEXT, b'first'))
    with gevent.Timeout(5):
        while len(got) < 1:
            gevent.idle()
    assert got == ['first']
    conn._sock.close()      # from another greenlet: the wait ends with an error
    reader.join(5)
    assert reader.ready() and reader.successful()
    assert got == ['first', None]
    assert conn.end_reason == rfc6455.CONNECTION_LOST
    client.close()


def test_a_send_that_does_not_wait_never_switches_and_a_close_finishes_its_frame() -> None:
    """On gevent's socket the try is the system call itself: a full socket
    answers at once (no wait on the write watcher, no switch to another
    greenlet); a close from another greenlet then writes the rest of the
    partly written frame before its close frame."""
    conn, client, frames = open_conn()
    assert conn._nowait_sock is not None
    switched = []
    other = gevent.spawn(switched.append, True)
    sent = []
    for i in range(1000):
        message = bytes([i % 256]) * 65536
        sent.append(message)
        if not conn.send_many([message], block=False):
            break
    else:
        pytest.fail('the socket never filled')
    assert switched == []          # no greenlet ran meanwhile: nothing waited
    other.join(5)
    closer = gevent.spawn(conn.close, 1001, 'going away')
    got = [frames.frame() for _ in range(len(sent) + 1)]
    closer.join(5)
    assert closer.ready() and closer.successful()
    assert [f.payload for f in got[:-1]] == sent   # type: ignore[union-attr]
    assert got[-1] is not None and got[-1].opcode == CLOSE
    assert got[-1].payload == close_payload(1001, b'going away')
    client.close()
