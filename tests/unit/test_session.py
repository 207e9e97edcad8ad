import threading

import pytest

from engineio_wsgi.backends import ThreadingBackend
from engineio_wsgi.options import Options
from engineio_wsgi.packets import Packet, PacketType
from engineio_wsgi.session import (
    DuplicateRequest,
    ProtocolViolation,
    Reason,
    Session,
    State,
    TransportClosed,
)
from tests.live import wait_until

from .fakes import FakeBackend

MSG = PacketType.MESSAGE


class Transport:
    """Records how the session let go of its WebSocket."""

    def __init__(self):
        self.calls = []

    def close(self):
        self.calls.append('close')

    def abort(self):
        self.calls.append('abort')


class Recorder:
    def __init__(self):
        self.messages = []
        self.closed = []
        self.finished = []
        self.events = []

    def on_message(self, session, data):
        self.messages.append(data)
        self.events.append(('message', data))

    def on_close(self, session, reason):
        self.closed.append(reason)
        self.events.append(('close', reason))

    def on_finished(self, session):
        self.finished.append(session.sid)


def waiting_get(session):
    """A GET in its own thread, returned once it is waiting on the session."""
    result = []
    getter = threading.Thread(target=lambda: result.append(session.poll()))
    getter.start()
    wait_until(lambda: session._polling_get, 2, interval=0.001, message='the GET waiting')
    return getter, result


def make(backend=None, **options):
    backend = backend or FakeBackend()
    rec = Recorder()
    opts = Options.from_kwargs(ping_interval=1.0, ping_timeout=0.5, **options)
    session = Session('sid1', 'polling', backend, opts, on_message=rec.on_message,
                      on_close=rec.on_close, on_finished=rec.on_finished)
    session.set_open_packet('{}')
    session.start()
    return session, rec, backend


def test_open_packet_comes_first_then_what_was_sent():
    session, _, _ = make()
    session.enqueue(Packet(MSG, 'hi'))
    assert session.poll() == [Packet(PacketType.OPEN, '{}'), Packet(MSG, 'hi')]


def test_poll_returns_at_most_max_packets_per_poll():
    session, _, _ = make(max_packets_per_poll=3)
    session.poll()
    for i in range(7):
        session.enqueue(Packet(MSG, str(i)))
    assert [p.data for p in session.poll()] == ['0', '1', '2']
    assert [p.data for p in session.poll()] == ['3', '4', '5']
    assert [p.data for p in session.poll()] == ['6']


def test_ping_at_interval_and_ping_timeout_at_its_deadline():
    session, rec, backend = make()
    session.poll()  # the open packet
    backend.clock.advance(0.999)
    assert session.heartbeat_step() == pytest.approx(backend.clock.now + 0.001)
    backend.clock.advance(0.001)
    session.heartbeat_step()
    assert session.poll() == [Packet(PacketType.PING)]
    backend.clock.advance(0.499)
    session.heartbeat_step()
    assert not session.closed
    backend.clock.advance(0.001)
    session.heartbeat_step()
    assert rec.closed == [Reason.PING_TIMEOUT]
    assert session.state is State.CLOSED
    assert rec.finished == ['sid1']


def test_pong_keeps_the_session_alive():
    session, rec, backend = make()
    session.poll()
    for _ in range(5):
        backend.clock.advance(1.0)
        session.heartbeat_step()
        assert session.poll() == [Packet(PacketType.PING)]
        backend.clock.advance(0.4)
        session.receive(Packet(PacketType.PONG))
        session.heartbeat_step()
    assert not session.closed
    assert rec.closed == []


def test_server_disconnect_lingers_until_the_next_get_fetches_the_close_packet():
    session, rec, backend = make()
    session.poll()
    session.enqueue(Packet(MSG, 'last'))
    assert session.close(Reason.SERVER_DISCONNECT) is True
    assert rec.closed == [Reason.SERVER_DISCONNECT]  # at the call
    assert session.state is State.CLOSING
    assert not session.enqueue(Packet(MSG, 'too late'))
    assert session.poll() == [Packet(MSG, 'last'), Packet(PacketType.CLOSE)]
    assert session.state is State.CLOSED
    assert rec.finished == ['sid1']
    assert session.close(Reason.SERVER_DISCONNECT) is False
    assert rec.closed == [Reason.SERVER_DISCONNECT]


def test_lingering_session_is_dropped_after_ping_interval_plus_timeout():
    session, rec, backend = make()
    session.poll()
    session.close(Reason.SERVER_DISCONNECT)
    backend.clock.advance(1.49)
    session.heartbeat_step()
    assert session.state is State.CLOSING
    backend.clock.advance(0.01)
    session.heartbeat_step()
    assert session.state is State.CLOSED
    assert rec.finished == ['sid1']


def test_client_close_ends_the_session_at_once():
    session, rec, _ = make()
    session.poll()
    session.receive(Packet(PacketType.CLOSE))
    assert session.state is State.CLOSED
    assert rec.closed == [Reason.CLIENT_DISCONNECT]


def test_client_close_answers_a_waiting_get_with_noop():
    backend = ThreadingBackend()
    session, rec, _ = make(backend)
    session.poll()
    getter, result = waiting_get(session)
    session.receive(Packet(PacketType.CLOSE))
    getter.join(2)
    assert result == [[Packet(PacketType.NOOP)]]
    assert rec.finished == ['sid1']


def test_client_close_over_websocket_writes_nothing_more():
    session, _, _ = make()
    written, transport = [], Transport()
    session.use_writer(written.extend, transport)
    session.receive(Packet(PacketType.CLOSE))
    assert [p.type for p in written] == [PacketType.OPEN]
    assert transport.calls == ['close']


@pytest.mark.parametrize('kind', [PacketType.PING, PacketType.OPEN])
def test_forbidden_client_packets_are_protocol_violations(kind):
    session, _, _ = make()
    with pytest.raises(ProtocolViolation):
        session.receive(Packet(kind, ''))


def test_upgrade_and_noop_packets_are_ignored():
    session, rec, _ = make()
    session.receive(Packet(PacketType.UPGRADE, ''))
    session.receive(Packet(PacketType.NOOP, ''))
    assert not session.closed and rec.messages == []


def test_send_buffer_full_closes_the_session():
    session, rec, _ = make(max_queued_packets=3)
    session.poll()
    for i in range(3):
        assert session.enqueue(Packet(MSG, str(i)))
    assert not session.enqueue(Packet(MSG, 'overflow'))
    assert rec.closed == [Reason.SEND_BUFFER_FULL]


def test_messages_are_dispatched_in_order_and_close_is_reported_after_them():
    session, rec, _ = make()
    for i in range(3):
        session.receive(Packet(MSG, str(i)))
    session.receive(Packet(PacketType.CLOSE))
    assert rec.events == [('message', '0'), ('message', '1'), ('message', '2'),
                          ('close', Reason.CLIENT_DISCONNECT)]


def test_writer_receives_everything_queued_in_order_then_new_packets():
    session, _, _ = make()
    session.enqueue(Packet(MSG, 'a'))
    written = []
    transport = Transport()
    session.use_writer(written.extend, transport)
    session.enqueue(Packet(MSG, 'b'))
    assert [p.type for p in written] == [PacketType.OPEN, MSG, MSG]
    assert [p.data for p in written[1:]] == ['a', 'b']
    assert session.transport == 'websocket'
    session.close(Reason.SERVER_DISCONNECT)
    assert written[-1] == Packet(PacketType.CLOSE)
    assert transport.calls == ['close']   # after the close packet: gracefully
    assert session.state is State.CLOSED


def test_the_open_packet_is_written_by_the_caller_and_the_rest_by_a_worker():
    """A WebSocket-only session: the reader's thread writes only the open
    packet (before it reads anything), the queue behind it goes out elsewhere."""
    backend = FakeBackend()
    later = []
    backend.run_soon = lambda fn, *args: later.append((fn, args))
    session, _, _ = make(backend)
    session.enqueue(Packet(MSG, 'queued at connect'))
    written = []
    session.use_writer(written.extend, Transport())
    assert [p.type for p in written] == [PacketType.OPEN]
    assert len(later) == 1           # the rest: not on this thread
    fn, args = later.pop()
    fn(*args)
    assert [p.type for p in written] == [PacketType.OPEN, MSG]


def test_a_failing_writer_ends_the_session_without_writing_again():
    session, rec, _ = make()
    calls = []

    def broken(batch):
        calls.append(batch)
        raise ConnectionError('gone')
    transport = Transport()
    session.use_writer(broken, transport)
    assert len(calls) == 1
    assert transport.calls == ['abort']
    assert rec.closed == [Reason.TRANSPORT_ERROR]
    assert session.state is State.CLOSED


def test_a_writer_that_finds_the_client_gone_ends_the_session_as_transport_close():
    """The writer can meet the client's close before the reader reports it:
    the reason is the reader's, not an I/O error."""
    session, rec, _ = make()

    def closed(batch):
        raise TransportClosed('the client closed the WebSocket')
    transport = Transport()
    session.use_writer(closed, transport)
    assert transport.calls == ['abort']
    assert rec.closed == [Reason.TRANSPORT_CLOSE]
    assert session.state is State.CLOSED


def test_a_ping_timeout_with_a_write_under_way_cuts_the_connection_at_once():
    """A client that stopped reading: no close packet can reach it, and the
    write holds a worker, so the session ends at its ping deadline without
    lingering for the close packet."""
    backend = FakeBackend()
    pending = []
    backend.run_soon = lambda fn, *args: pending.append(fn)   # the write never ends
    session, rec, _ = make(backend)
    transport = Transport()
    session.use_writer(lambda batch: None, transport)
    assert pending                       # the flush is under way
    backend.clock.advance(1.0)           # ping_interval
    session.heartbeat_step()
    backend.clock.advance(0.5)           # ping_timeout
    session.heartbeat_step()
    assert rec.closed == [Reason.PING_TIMEOUT]
    assert transport.calls == ['abort']
    assert session.state is State.CLOSED


def test_slow_post_body_is_aborted_at_its_deadline():
    session, _, backend = make(http_body_timeout=2.0)
    aborted = []
    session.begin_post(lambda: aborted.append(True))
    backend.clock.advance(1.9)
    session.heartbeat_step()
    assert aborted == []
    backend.clock.advance(0.1)
    session.heartbeat_step()
    assert aborted == [True]
    session.end_post()


def test_duplicate_post_is_detected():
    session, _, _ = make()
    session.begin_post()
    with pytest.raises(DuplicateRequest):
        session.begin_post()
    session.end_post()
    session.begin_post()


def test_record_separator_in_text_is_refused_on_polling_only():
    session, _, _ = make()
    with pytest.raises(ValueError):
        session.check_text('a\x1eb')
    session.use_writer(lambda batch: None, Transport())
    session.check_text('a\x1eb')


def test_upgrading_makes_a_waiting_get_return_noop_at_once():
    backend = ThreadingBackend()
    session, _, _ = make(backend)
    session.poll()
    getter, result = waiting_get(session)
    assert session.reserve_probe()
    assert not session.reserve_probe()  # a second WebSocket is refused
    session.start_upgrade()
    getter.join(2)
    assert result == [[Packet(PacketType.NOOP)]]
    session.close(Reason.SERVER_DISCONNECT, farewell=False)


def test_duplicate_get_is_detected_while_one_waits():
    backend = ThreadingBackend()
    session, rec, _ = make(backend)
    session.poll()
    getter, result = waiting_get(session)
    with pytest.raises(DuplicateRequest):
        session.poll()
    session.close(Reason.TRANSPORT_ERROR)
    getter.join(2)
    assert result == [[Packet(PacketType.CLOSE)]]
    assert session.state is State.CLOSED
