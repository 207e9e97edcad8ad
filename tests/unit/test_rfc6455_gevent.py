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
        assert rfc6455._read_waiter(server) is not None


def test_messages_one_at_a_time() -> None:
    conn, client, frames = open_conn()
    assert conn._wait_read is not None

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
