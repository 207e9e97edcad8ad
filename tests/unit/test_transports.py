"""Each transport against the interface of engineio_wsgi/transport.py: when it
can carry a close packet, what ``queued`` asks for, and that it holds the
session's lock rules."""

from __future__ import annotations

import threading

import pytest

from engineio_wsgi.backends import ThreadingBackend
from engineio_wsgi.options import Options
from engineio_wsgi.packets import Packet, PacketType, decode_packet
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.reasons import Reason
from engineio_wsgi.session import Session, State
from engineio_wsgi.transport import Transport, Unconnected
from engineio_wsgi.websocket_transport import WebSocketTransport
from tests.live import wait_until

from .fakes import FakeBackend, FakeConn

INTERFACE = [name for name in vars(Transport)
             if not name.startswith('_') and callable(getattr(Transport, name))]


def session_on(factory, backend=None):
    opts = Options.from_kwargs(ping_interval=1.0, ping_timeout=0.5)
    session = Session('sid1', factory, backend or FakeBackend(), opts,
                      on_message=lambda *a: None, on_close=lambda *a: None,
                      on_finished=lambda *a: None)
    session.set_open_packet('{}')
    return session


def websocket_on(session):
    transport = WebSocketTransport(session, FakeConn(), False)
    session.switch(transport)
    return transport


def test_every_transport_has_the_whole_interface():
    assert {'queued', 'send', 'carries_close', 'writing', 'attached', 'wake', 'close',
            'abort'} <= set(INTERFACE)
    session = session_on(PollingTransport)
    for transport in (session.polling, Unconnected(), websocket_on(session_on(PollingTransport))):
        missing = [name for name in [*INTERFACE, 'name']
                   if not hasattr(transport, name)]
        assert missing == [], type(transport).__name__


@pytest.mark.parametrize('reason, expected', [
    (Reason.TRANSPORT_ERROR, False),
    (Reason.PING_TIMEOUT, False),
    (Reason.SERVER_DISCONNECT, True),
    (Reason.SERVER_SHUTDOWN, True),
    # gone at once: a client with no GET waiting is not owed a close packet
    (Reason.PARSE_ERROR, False),
])
def test_polling_without_a_waiting_get_carries_a_close_packet_only_when_owed(
        reason, expected):
    session = session_on(PollingTransport)
    with session.lock:
        assert session.polling.carries_close(reason) is expected
        assert Unconnected().carries_close(reason) is expected


def test_polling_with_a_waiting_get_carries_every_close_packet():
    session = session_on(PollingTransport, ThreadingBackend())
    session.polling.poll()                       # the open packet
    getter = threading.Thread(target=session.polling.poll)
    getter.start()
    wait_until(lambda: session.polling.get_waiting, 2, interval=0.001,
               message='the GET waiting')
    with session.lock:
        assert session.polling.carries_close(Reason.TRANSPORT_ERROR)
    session.close(Reason.TRANSPORT_ERROR)
    getter.join(2)
    assert session.state is State.FINISHED


def test_a_websocket_carries_every_close_packet_and_writes_one_batch_at_a_time():
    session = session_on(PollingTransport)
    transport = websocket_on(session)
    with session.lock:
        assert transport.carries_close(Reason.TRANSPORT_ERROR)
        assert not transport.writing()
        assert transport.queued()          # starts a writer...
        assert transport.writing()
        assert not transport.queued()      # ...and only one
    transport.send()                       # the writer ran (inline here) and is done
    with session.lock:
        assert not transport.writing()


def test_polling_asks_for_a_wake_up_on_every_packet():
    session = session_on(PollingTransport)
    with session.lock:
        assert session.polling.queued() and session.polling.queued()
        assert not session.polling.writing()


def test_a_websocket_only_session_keeps_its_packets_until_its_connection_is_ready():
    session = session_on(lambda s: Unconnected())
    assert session.transport == 'websocket'
    session.enqueue(Packet(PacketType.MESSAGE, 'early'))
    conn = FakeConn()
    session.switch(WebSocketTransport(session, conn, False))
    assert [decode_packet(frame).type for frame in conn.frames] == [
        PacketType.OPEN, PacketType.MESSAGE]
