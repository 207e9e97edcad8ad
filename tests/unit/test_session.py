import threading

import pytest

from engineio_wsgi import rfc6455
from engineio_wsgi.backends import ThreadingBackend
from engineio_wsgi.lifecycle import IllegalTransition
from engineio_wsgi.options import Options
from engineio_wsgi.packets import Packet, PacketType, decode_packet
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.reasons import Reason
from engineio_wsgi.session import Session, State
from engineio_wsgi.transport import DuplicateRequest, ProtocolViolation, RateLimited
from engineio_wsgi.websocket_transport import WebSocketTransport
from tests.live import wait_until

from .fakes import FakeBackend, FakeConn, FakeTransport

MSG = PacketType.MESSAGE


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
    getter = threading.Thread(target=lambda: result.append(session.polling.poll()))
    getter.start()
    wait_until(lambda: session.polling.get_waiting, 2, interval=0.001,
               message='the GET waiting')
    return getter, result


def make(backend=None, **options):
    backend = backend or FakeBackend()
    rec = Recorder()
    opts = Options.from_kwargs(ping_interval=1.0, ping_timeout=0.5, **options)
    session = Session('sid1', PollingTransport, backend, opts, on_message=rec.on_message,
                      on_close=rec.on_close, on_finished=rec.on_finished)
    session.set_open_packet('{}')
    session.start()
    return session, rec, backend


class Written:
    """What a WebSocket transport wrote to its (fake) connection, as packets."""

    def __init__(self, conn):
        self.conn = conn

    def packets(self):
        return [decode_packet(frame) for frame in self.conn.frames]


def websocket(session):
    """Switch ``session`` to a WebSocket transport over a fake connection."""
    conn = FakeConn()
    session.switch(WebSocketTransport(session, conn, False))
    return conn, Written(conn)


def test_open_packet_comes_first_then_what_was_sent():
    session, _, _ = make()
    session.enqueue(Packet(MSG, 'hi'))
    assert session.polling.poll() == [Packet(PacketType.OPEN, '{}'), Packet(MSG, 'hi')]


def test_poll_returns_at_most_max_packets_per_poll():
    session, _, _ = make(max_packets_per_poll=3)
    session.polling.poll()
    for i in range(7):
        session.enqueue(Packet(MSG, str(i)))
    assert [p.data for p in session.polling.poll()] == ['0', '1', '2']
    assert [p.data for p in session.polling.poll()] == ['3', '4', '5']
    assert [p.data for p in session.polling.poll()] == ['6']


def test_ping_at_interval_and_ping_timeout_at_its_deadline():
    session, rec, backend = make()
    session.polling.poll()  # the open packet
    backend.clock.advance(0.999)
    assert session.heartbeat.step() == pytest.approx(backend.clock.now + 0.001)
    backend.clock.advance(0.001)
    session.heartbeat.step()
    assert session.polling.poll() == [Packet(PacketType.PING)]
    backend.clock.advance(0.499)
    session.heartbeat.step()
    assert not session.closed
    backend.clock.advance(0.001)
    session.heartbeat.step()
    assert rec.closed == [Reason.PING_TIMEOUT]
    assert session.state is State.FINISHED
    assert rec.finished == ['sid1']


def test_pong_keeps_the_session_alive():
    session, rec, backend = make()
    session.polling.poll()
    for _ in range(5):
        backend.clock.advance(1.0)
        session.heartbeat.step()
        assert session.polling.poll() == [Packet(PacketType.PING)]
        backend.clock.advance(0.4)
        session.receive(Packet(PacketType.PONG))
        session.heartbeat.step()
    assert not session.closed
    assert rec.closed == []


def test_server_disconnect_lingers_until_the_next_get_fetches_the_close_packet():
    session, rec, backend = make()
    session.polling.poll()
    session.enqueue(Packet(MSG, 'last'))
    assert session.close(Reason.SERVER_DISCONNECT) is True
    assert rec.closed == [Reason.SERVER_DISCONNECT]  # at the call
    assert session.state is State.CLOSING
    assert not session.enqueue(Packet(MSG, 'too late'))
    assert session.polling.poll() == [Packet(MSG, 'last'), Packet(PacketType.CLOSE)]
    assert session.state is State.FINISHED
    assert rec.finished == ['sid1']
    assert session.close(Reason.SERVER_DISCONNECT) is False
    assert rec.closed == [Reason.SERVER_DISCONNECT]


def test_lingering_session_is_dropped_after_ping_interval_plus_timeout():
    session, rec, backend = make()
    session.polling.poll()
    session.close(Reason.SERVER_DISCONNECT)
    backend.clock.advance(1.49)
    session.heartbeat.step()
    assert session.state is State.CLOSING
    backend.clock.advance(0.01)
    session.heartbeat.step()
    assert session.state is State.FINISHED
    assert rec.finished == ['sid1']


def test_client_close_ends_the_session_at_once():
    session, rec, _ = make()
    session.polling.poll()
    session.receive(Packet(PacketType.CLOSE))
    assert session.state is State.FINISHED
    assert rec.closed == [Reason.CLIENT_DISCONNECT]


def test_client_close_answers_a_waiting_get_with_noop():
    backend = ThreadingBackend()
    session, rec, _ = make(backend)
    session.polling.poll()
    getter, result = waiting_get(session)
    session.receive(Packet(PacketType.CLOSE))
    getter.join(2)
    assert result == [[Packet(PacketType.NOOP)]]
    assert rec.finished == ['sid1']


def test_client_close_over_websocket_writes_nothing_more():
    session, _, _ = make()
    conn, written = websocket(session)
    session.receive(Packet(PacketType.CLOSE))
    assert [p.type for p in written.packets()] == [PacketType.OPEN]
    assert conn.calls == ['close']


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
    session.polling.poll()
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
    conn, written = websocket(session)
    session.enqueue(Packet(MSG, 'b'))
    assert [p.type for p in written.packets()] == [PacketType.OPEN, MSG, MSG]
    assert [p.data for p in written.packets()[1:]] == ['a', 'b']
    assert session.transport == 'websocket'
    session.close(Reason.SERVER_DISCONNECT)
    assert written.packets()[-1].type is PacketType.CLOSE
    assert conn.calls == ['close']   # after the close packet: gracefully
    assert session.state is State.FINISHED


def test_the_reader_writes_one_batch_with_the_open_packet_first_and_the_loop_the_rest():
    """A WebSocket-only session: the reader's thread writes one batch at
    most, the open packet first (before it reads anything); what is queued
    meanwhile goes out from the I/O loop, not from this thread."""
    backend = FakeBackend()
    session, _, _ = make(backend)
    session.enqueue(Packet(MSG, 'queued at connect'))
    conn = FakeConn()
    transport = WebSocketTransport(session, conn, False)

    def queue_during_the_write(frames, block=True):
        conn.frames.extend(frames)
        session.enqueue(Packet(MSG, 'queued during the write'))
        conn.send_many = FakeConn.send_many.__get__(conn)
        return True
    conn.send_many = queue_during_the_write
    assert session.switch(transport)
    written = [decode_packet(frame) for frame in conn.frames]
    assert [p.type for p in written] == [PacketType.OPEN, MSG]
    assert written[1].data == 'queued at connect'
    assert conn.on_loop == [transport._write_turn]   # the rest: on the loop
    conn.on_loop.pop()()
    assert [decode_packet(frame).data for frame in conn.frames][-1] == 'queued during the write'
    assert transport.output.value == 'idle'


def test_a_failing_writer_ends_the_session_without_writing_again():
    session, rec, _ = make()
    conn = FakeConn()
    conn.fail = ConnectionError('gone')
    session.switch(WebSocketTransport(session, conn, False))
    session.enqueue(Packet(MSG, 'not written'))
    assert conn.frames == []
    assert conn.calls == ['abort']
    assert rec.closed == [Reason.TRANSPORT_ERROR]
    assert session.state is State.FINISHED


def test_a_writer_that_finds_the_client_gone_ends_the_session_as_transport_close():
    """The writer can meet the client's close before the reader reports it:
    the reason is the reader's, not an I/O error."""
    session, rec, _ = make()
    conn = FakeConn()
    conn.fail = rfc6455.ConnectionClosed('closed')
    conn.end_reason = rfc6455.PEER_CLOSE
    session.switch(WebSocketTransport(session, conn, False))
    assert conn.calls == ['abort']
    assert rec.closed == [Reason.TRANSPORT_CLOSE]
    assert session.state is State.FINISHED


def test_a_ping_timeout_with_a_write_under_way_cuts_the_connection_at_once():
    """A client that stopped reading: no close packet can reach it, and the
    write still waits on the loop, so the session ends at its ping deadline
    without lingering for the close packet."""
    backend = FakeBackend()
    pending = []
    backend.run_soon = lambda fn, *args: pending.append(fn)   # workers run below
    session, rec, _ = make(backend)
    conn = FakeConn()
    conn.send_many = lambda frames, block=True: False   # the socket is full
    transport = WebSocketTransport(session, conn, False)
    session.switch(transport)
    assert conn.on_loop == [transport._write_turn]      # the rest waits for the socket
    backend.clock.advance(1.0)           # ping_interval
    session.heartbeat.step()
    backend.clock.advance(0.5)           # ping_timeout
    session.heartbeat.step()
    assert conn.calls == ['abort']
    assert session.state is State.FINISHED
    # the end is reported on a worker, not by the heartbeat
    assert rec.closed == []
    assert pending[-1] == session.dispatcher._drain
    pending[-1]()
    assert rec.closed == [Reason.PING_TIMEOUT]


def test_slow_post_body_is_aborted_at_its_deadline():
    session, _, backend = make(http_body_timeout=2.0)
    aborted = []
    session.polling.begin_post(lambda: aborted.append(True))
    backend.clock.advance(1.9)
    session.heartbeat.step()
    assert aborted == []
    backend.clock.advance(0.1)
    session.heartbeat.step()
    assert aborted == [True]
    session.polling.end_post()


def test_duplicate_post_is_detected():
    session, _, _ = make()
    session.polling.begin_post()
    with pytest.raises(DuplicateRequest):
        session.polling.begin_post()
    session.polling.end_post()
    session.polling.begin_post()


def test_record_separator_in_text_is_refused_on_polling_only():
    session, _, _ = make()
    with pytest.raises(ValueError):
        session.check_text('a\x1eb')
    websocket(session)
    session.check_text('a\x1eb')


def test_upgrading_makes_a_waiting_get_return_noop_at_once():
    backend = ThreadingBackend()
    session, _, _ = make(backend)
    session.polling.poll()
    getter, result = waiting_get(session)
    assert session.polling.reserve_probe()
    assert not session.polling.reserve_probe()  # a second WebSocket is refused
    session.polling.pause()
    getter.join(2)
    assert result == [[Packet(PacketType.NOOP)]]
    session.close(Reason.SERVER_DISCONNECT, farewell=False)


def test_duplicate_get_is_detected_while_one_waits():
    backend = ThreadingBackend()
    session, rec, _ = make(backend)
    session.polling.poll()
    getter, result = waiting_get(session)
    with pytest.raises(DuplicateRequest):
        session.polling.poll()
    session.close(Reason.TRANSPORT_ERROR)
    getter.join(2)
    assert result == [[Packet(PacketType.CLOSE)]]
    assert session.state is State.FINISHED


# -- a session driven through the transport interface alone ------------------------

def on_fake(backend=None, carries_close=True, **options):
    """A session whose transport is a ``FakeTransport``, as a WebSocket-only
    session's would be once connected."""
    backend = backend or FakeBackend()
    rec = Recorder()
    opts = Options.from_kwargs(ping_interval=1.0, ping_timeout=0.5, **options)
    holder = []

    def fake(session):
        holder.append(FakeTransport(session, carries_close=carries_close))
        return holder[0]
    session = Session('sid1', fake, backend, opts, on_message=rec.on_message,
                      on_close=rec.on_close, on_finished=rec.on_finished)
    session.set_open_packet('{}')
    session.start()
    transport = holder[0]
    transport.deliver()
    return session, transport, rec, backend


def test_fake_open_then_messages_both_ways():
    session, transport, rec, _ = on_fake()
    assert [p.type for p in transport.written] == [PacketType.OPEN]
    session.receive(Packet(MSG, 'in'))
    assert rec.messages == ['in']
    assert session.enqueue(Packet(MSG, 'out'))
    assert transport.calls[-1] == 'send'
    assert transport.deliver() == [Packet(MSG, 'out')]
    assert session.state is State.OPEN


def test_fake_upgrade_carries_the_queue_over_and_sends_a_waiting_get_away():
    backend = ThreadingBackend()
    session, rec, _ = make(backend)
    session.polling.poll()
    getter, result = waiting_get(session)
    assert session.polling.reserve_probe()
    session.polling.pause()
    getter.join(2)
    assert result == [[Packet(PacketType.NOOP)]]
    assert session.upgrading
    session.enqueue(Packet(MSG, 'queued while upgrading'))
    transport = FakeTransport(session)
    assert session.switch(transport)
    assert transport.calls == ['attached'] and transport.opening is None
    assert session.transport == 'websocket' and not session.upgrading
    assert session.polling.poll() == [Packet(PacketType.NOOP)]   # a late GET
    assert transport.deliver() == [Packet(MSG, 'queued while upgrading')]
    session.close(Reason.SERVER_DISCONNECT, farewell=False)


def test_fake_switch_after_the_end_closes_the_new_transport():
    session, rec, _ = make()
    session.close(Reason.CLIENT_DISCONNECT, farewell=False)
    transport = FakeTransport(session)
    assert not session.switch(transport)
    assert transport.calls == ['close']


def test_fake_server_disconnect_sends_the_close_packet_then_closes_gracefully():
    session, transport, rec, _ = on_fake()
    session.enqueue(Packet(MSG, 'last'))
    assert session.close(Reason.SERVER_DISCONNECT)
    assert rec.closed == [Reason.SERVER_DISCONNECT]
    assert session.state is State.CLOSING
    assert [p.type for p in transport.deliver()] == [MSG, PacketType.CLOSE]
    assert session.state is State.FINISHED
    assert transport.calls[-1] == 'close' and rec.finished == ['sid1']


def test_fake_ping_timeout():
    session, transport, rec, backend = on_fake()
    backend.clock.advance(1.0)
    session.heartbeat.step()
    assert transport.deliver() == [Packet(PacketType.PING)]
    backend.clock.advance(0.5)
    session.heartbeat.step()
    assert rec.closed == [Reason.PING_TIMEOUT]
    assert [p.type for p in transport.deliver()] == [PacketType.CLOSE]
    assert session.state is State.FINISHED


def test_fake_close_packet_never_delivered_ends_after_the_grace_time():
    session, transport, rec, backend = on_fake()
    session.close(Reason.SERVER_DISCONNECT)
    backend.clock.advance(1.49)
    session.heartbeat.step()
    assert session.state is State.CLOSING
    backend.clock.advance(0.01)
    assert session.heartbeat.step() is None
    assert session.state is State.FINISHED
    assert transport.calls[-1] == 'abort'    # a client that does not read


def test_fake_parse_error_ends_the_session_after_the_messages_before_it():
    session, transport, rec, _ = on_fake()
    session.receive(Packet(MSG, 'before'))
    with pytest.raises(ProtocolViolation) as info:
        session.receive(Packet(PacketType.PING, ''))
    session.bad_input(info.value)
    assert rec.events == [('message', 'before'), ('close', Reason.PARSE_ERROR)]
    assert [p.type for p in transport.deliver()] == [PacketType.CLOSE]
    assert session.state is State.FINISHED


def test_fake_draining_session_still_sends_and_takes_no_more_input():
    backend = FakeBackend()
    later = []
    backend.run_soon = lambda fn, *args: later.append(fn)   # dispatch waits
    session, transport, rec, _ = on_fake(backend)
    session.receive(Packet(MSG, 'before'))
    session.bad_input(ProtocolViolation('bad'))
    assert session.state is State.DRAINING and not session.closed
    session.receive(Packet(MSG, 'after'))             # dropped
    assert session.enqueue(Packet(MSG, 'reply'))       # still sent
    later.pop()()
    assert rec.events == [('message', 'before'), ('close', Reason.PARSE_ERROR)]
    assert [p.type for p in transport.deliver()] == [MSG, PacketType.CLOSE]


def test_fake_transport_error():
    session, transport, rec, _ = on_fake()
    session.transport_failed(ConnectionError('reset'))
    assert rec.closed == [Reason.TRANSPORT_ERROR]
    assert transport.calls[-1] == 'abort'
    assert session.state is State.FINISHED and rec.finished == ['sid1']


def test_fake_transport_close():
    session, transport, rec, _ = on_fake()
    session.transport_closed(Reason.TRANSPORT_CLOSE)
    assert rec.closed == [Reason.TRANSPORT_CLOSE]
    assert transport.calls[-1] == 'close'
    assert session.state is State.FINISHED


def test_fake_client_close():
    session, transport, rec, _ = on_fake()
    session.receive(Packet(PacketType.CLOSE))
    assert rec.closed == [Reason.CLIENT_DISCONNECT]
    assert transport.deliver() == []                  # nothing more is sent
    assert session.state is State.FINISHED


def test_fake_send_buffer_full():
    session, transport, rec, _ = on_fake(max_queued_packets=2)
    assert session.enqueue(Packet(MSG, '1')) and session.enqueue(Packet(MSG, '2'))
    assert not session.enqueue(Packet(MSG, '3'))
    assert rec.closed == [Reason.SEND_BUFFER_FULL]
    assert transport.calls[-1] == 'abort'
    assert session.state is State.FINISHED


def test_fake_rate_limit():
    session, transport, rec, _ = on_fake(message_rate_limit=(2, 60))
    session.receive(Packet(MSG, '1'))
    session.receive(Packet(MSG, '2'))
    with pytest.raises(RateLimited) as info:
        session.receive(Packet(MSG, '3'))
    session.bad_input(info.value)
    assert rec.events == [('message', '1'), ('message', '2'),
                          ('close', Reason.TRANSPORT_ERROR)]


def test_fake_shutdown_of_a_client_that_never_fetches_its_close_packet():
    session, transport, rec, _ = on_fake()
    session.close(Reason.SERVER_SHUTDOWN)
    assert session.state is State.CLOSING
    session.end()
    assert rec.closed == [Reason.SERVER_SHUTDOWN]
    assert transport.calls[-1] == 'abort'
    assert session.state is State.FINISHED and rec.finished == ['sid1']


def test_fake_close_packet_that_cannot_be_carried_ends_at_once():
    session, transport, rec, _ = on_fake(carries_close=False)
    session.close(Reason.TRANSPORT_ERROR)
    assert session.state is State.FINISHED
    assert transport.deliver() == []


def test_a_transport_reporting_a_delivery_it_never_had_is_a_bug():
    session, transport, rec, _ = on_fake()
    with pytest.raises(IllegalTransition):
        session.delivered()
    assert session.state is State.OPEN


def test_methods_that_need_the_session_lock_refuse_to_run_without_it():
    session, _, _ = make()
    with pytest.raises(AssertionError):
        session.take()
    with pytest.raises(AssertionError):
        session.polling.carries_close(Reason.SERVER_DISCONNECT)
    with pytest.raises(AssertionError):
        session.dispatcher.close_later(Reason.PARSE_ERROR)
    with session.lock:
        assert session.take() == ([Packet(PacketType.OPEN, '{}')], False)
