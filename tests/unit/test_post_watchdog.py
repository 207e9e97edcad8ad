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


def make_session_with(**options: float) -> tuple[Session, FakeBackend]:
    backend = FakeBackend()
    opts = Options.from_kwargs(**options)
    session = Session('sid1', PollingTransport, backend, opts, on_message=lambda *a: None,
                      on_close=lambda *a: None, on_finished=lambda *a: None)
    session.set_open_packet('{}')
    session.start()
    return session, backend


def test_a_post_does_not_wake_a_heartbeat_that_looks_before_its_body_deadline():
    # the ping is due in 1 s, the body's deadline is 2 s away
    session, backend = make_session()
    opened = backend.clock.now
    assert session.heartbeat.next_look == opened + 1.0
    assert session.heartbeat.step() == opened + 1.0
    aborted = []
    session.polling.begin_post(lambda: aborted.append(True))
    assert session.heartbeat.next_look == opened + 1.0      # not woken
    session.polling.end_post()
    assert session.heartbeat.next_look == opened + 1.0
    backend.clock.advance(1.0)
    assert session.heartbeat.step() == backend.clock.now + 0.5   # the ping went out as due
    assert aborted == []


def test_a_slow_body_is_cut_on_time_when_its_deadline_comes_first():
    # a long ping interval: the body's deadline (2 s) comes first, the heartbeat is woken
    session, backend = make_session_with(ping_interval=25.0, ping_timeout=20.0,
                                         http_body_timeout=2.0)
    assert session.heartbeat.step() == backend.clock.now + 25.0
    aborted = []
    session.polling.begin_post(lambda: aborted.append(True))
    assert session.heartbeat.next_look == backend.clock.now    # woken: looks now
    assert session.heartbeat.step() == backend.clock.now + 2.0   # and again for the body
    backend.clock.advance(2.0)
    session.heartbeat.step()
    assert aborted == [True]


def test_the_end_of_a_post_wakes_a_heartbeat_that_waited_for_its_body_only():
    session, backend = make_session_with(ping_interval=25.0, ping_timeout=20.0,
                                         http_body_timeout=2.0)
    session.polling.begin_post(lambda: None)
    assert session.heartbeat.step() == backend.clock.now + 2.0
    with session.lock:
        assert session.heartbeat.unwatch_body() is True    # it must look again, for the ping
    assert session.heartbeat.step() == backend.clock.now + 25.0


def test_the_end_of_a_post_leaves_a_heartbeat_that_looks_earlier_alone():
    session, backend = make_session()
    session.polling.begin_post(lambda: None)
    assert session.heartbeat.step() == backend.clock.now + 1.0
    with session.lock:
        assert session.heartbeat.unwatch_body() is False
