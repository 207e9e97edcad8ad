"""The POST-body watchdog: it cuts a slow body's connection, keeps doing so
after the session ended, and can never touch the connection once the POST
finished reading (a kept-alive connection may serve the next request)."""

from __future__ import annotations

import socket

from engineio_wsgi.options import Options
from engineio_wsgi.polling_transport import PollingTransport, _Watchdog
from engineio_wsgi.reasons import Reason
from engineio_wsgi.session import Session

from .fakes import FakeBackend


def make_session() -> tuple[Session, FakeBackend]:
    backend = FakeBackend()
    opts = Options.from_kwargs(ping_interval=1.0, ping_timeout=0.5, http_body_timeout=2.0)
    session = Session('sid1', PollingTransport, backend, opts, on_message=lambda *a: None,
                      on_close=lambda *a: None, on_finished=lambda *a: None)
    session.set_open_packet('{}')
    session.start()
    return session, backend


def test_a_slow_body_is_cut_even_after_the_session_ended():
    session, backend = make_session()
    aborted = []
    session.polling.begin_post(lambda: aborted.append(True))
    session.close(Reason.TRANSPORT_ERROR)          # e.g. a duplicate POST
    assert session.heartbeat.step() is not None    # still watching the body
    backend.clock.advance(2.0)
    session.heartbeat.step()
    assert aborted == [True]
    session.polling.end_post()
    assert session.heartbeat.step() is None        # nothing left to watch


def test_the_watchdog_is_not_called_after_end_post():
    session, backend = make_session()
    aborted = []
    session.polling.begin_post(lambda: aborted.append(True))
    session.polling.end_post()
    backend.clock.advance(5.0)
    session.heartbeat.step()
    assert aborted == []


def connected_pair() -> tuple[socket.socket, socket.socket]:
    listener = socket.create_server(('127.0.0.1', 0))
    with listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def test_a_disarmed_watchdog_leaves_the_connection_alone():
    session, _ = make_session()
    client, server = connected_pair()
    with client, server:
        dog = _Watchdog(server, session)
        dog.disarm()                 # the body was read; the request goes on
        dog.abort()                  # a heartbeat that decided a moment too late
        client.sendall(b'next request')
        server.settimeout(2)
        assert server.recv(100) == b'next request'


def test_an_armed_watchdog_cuts_the_read_side_once():
    session, _ = make_session()
    client, server = connected_pair()
    with client, server:
        dog = _Watchdog(server, session)
        dog.abort()
        dog.abort()
        server.settimeout(2)
        assert server.recv(100) == b''   # the blocked body read sees the end
        server.sendall(b'HTTP/1.1 400')  # and the answer can still be written
        client.settimeout(2)
        assert client.recv(100) == b'HTTP/1.1 400'
