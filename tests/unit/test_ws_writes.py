"""Writes that never wait, and frames built once for many connections.

A real ``WSConnection`` on a socket pair with small buffers (as
tests/unit/test_rfc6455_wire.py): a send that the socket takes at once is
written by the caller; what it does not take stays queued, whole and in
order, and the I/O loop writes it once the client reads again: no thread
waits on a client, and a close is cut at its timeout whatever the client
does. The WebSocket transport builds the frame of a message sent to many
sessions once.
"""

from __future__ import annotations

import socket
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from engineio_wsgi import rfc6455
from engineio_wsgi.backends import ThreadingBackend
from engineio_wsgi.options import Options
from engineio_wsgi.packets import Packet, PacketType
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.reasons import Reason
from engineio_wsgi.session import Session
from engineio_wsgi.websocket_transport import WebSocketTransport
from tests.live import wait_until
from tests.unit.test_rfc6455_wire import CLOSE_TIMEOUT, Pair, open_pair
from tests.unit.wsframes import BINARY, CLOSE, TEXT, Frame, encode

pytestmark = pytest.mark.timeout(30)

MSG = PacketType.MESSAGE


@pytest.fixture
def ws(small_sockets: tuple[socket.socket, socket.socket]) -> Pair:
    return open_pair(small_sockets)


def read_frames(pair: Pair, count: int) -> list[Frame]:
    frames = []
    for _ in range(count):
        frame = pair.peer.frame()
        assert frame is not None, f'EOF after {len(frames)} of {count} frames'
        frames.append(frame)
    return frames


def written_by(write: Any, pair: Pair, count: int) -> list[Frame]:
    """Run the blocking ``write`` on a thread of its own while the client reads
    ``count`` frames; the frames, once the writer has returned."""
    writer = threading.Thread(target=write)
    writer.start()
    frames = read_frames(pair, count)
    writer.join(10)
    assert not writer.is_alive(), 'the writer did not return'
    return frames


def fill(pair: Pair) -> list[bytes]:
    """Send 64 kB binary messages without waiting until the socket is full;
    the messages sent (the last one only partly written)."""
    sent = []
    for i in range(1000):
        message = bytes([i % 256]) * 65536
        sent.append(message)
        if not pair.conn.send_many([message], block=False):
            return sent
    pytest.fail('the socket never filled')


def test_a_send_the_socket_takes_is_written_at_once_and_the_socket_stays_blocking(
        ws: Pair, small_sockets: tuple[socket.socket, socket.socket]) -> None:
    server, _ = small_sockets
    assert ws.conn.send_many(['hello', b'\x00\x01'], block=False) is True
    frames = read_frames(ws, 2)
    assert [(f.opcode, f.payload) for f in frames] == [(TEXT, b'hello'), (BINARY, b'\x00\x01')]
    assert server.gettimeout() is None
    assert server.getblocking()


def test_what_a_full_socket_does_not_take_waits_whole_and_in_order(ws: Pair) -> None:
    sent = fill(ws)
    # queued behind the rest of the partly written one, never written into it
    assert ws.conn.send_many(['small one', 'small two'], block=False) is False
    assert ws.conn.send_frames([rfc6455.data_frame('frame three')], block=False) is False
    frames = written_by(ws.conn.flush, ws, len(sent) + 3)
    assert [f.payload for f in frames[:len(sent)]] == sent
    assert [(f.opcode, f.payload) for f in frames[len(sent):]] == [
        (TEXT, b'small one'), (TEXT, b'small two'), (TEXT, b'frame three')]
    # the writer is done: the next send is written at once again
    assert ws.conn.send_many(['after'], block=False) is True
    assert read_frames(ws, 1)[0].payload == b'after'


def test_the_reader_leaves_a_partly_written_frame_to_the_writer(ws: Pair) -> None:
    """A message from a client that is not reading is still read: the rest of
    a frame that a send which never waits left is not written by the reader
    (which would wait on that client), but by the blocking writer after."""
    sent = fill(ws)
    ws.peer.send(encode(TEXT, b'hello from the client'))
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(ws.conn.receive(timeout=5)))
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), 'the reader waited on the client'
    assert got == ['hello from the client']
    frames = written_by(ws.conn.flush, ws, len(sent))
    assert [f.payload for f in frames] == sent


def test_a_close_while_a_frame_is_partly_written_finishes_it_first(ws: Pair) -> None:
    sent = fill(ws)
    closer = threading.Thread(target=ws.conn.close, args=(1001, 'going away'))
    closer.start()     # not the reader: sends its close frame and returns
    frames = read_frames(ws, len(sent) + 1)
    closer.join(10)
    assert not closer.is_alive()
    assert [f.payload for f in frames[:len(sent)]] == sent
    assert frames[-1].opcode == CLOSE
    assert frames[-1].payload[2:] == b'going away'
    with pytest.raises(rfc6455.ConnectionClosed):
        ws.conn.send_frames([rfc6455.data_frame('too late')], block=False)


def test_a_broken_connection_raises_on_a_send_that_does_not_wait(
        ws: Pair, small_sockets: tuple[socket.socket, socket.socket]) -> None:
    _, client = small_sockets
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    client.close()
    with pytest.raises(rfc6455.ConnectionClosed):
        for _ in range(100):   # the first write may still find the socket open
            ws.conn.send_many([b'x' * 65536], block=False)


def test_the_loop_writes_what_the_socket_did_not_take_once_the_client_reads(ws: Pair) -> None:
    sent = fill(ws)
    assert ws.conn.send_many(['behind the rest'], block=False) is False
    # nobody here writes: the client reads, and the frames come
    frames = read_frames(ws, len(sent) + 1)
    assert [f.payload for f in frames[:len(sent)]] == sent
    assert frames[-1].payload == b'behind the rest'
    # the client may read the last bytes before the loop let go of the turn:
    # once the loop says the queue is out, a send is written at once again
    drained = threading.Event()
    ws.conn.when_drained(drained.set)
    assert drained.wait(10), 'the loop never said the queue was out'
    assert ws.conn.send_many(['at once again'], block=False) is True
    assert read_frames(ws, 1)[0].payload == b'at once again'


def test_connections_whose_clients_stop_reading_hold_no_thread() -> None:
    made = [socket.socketpair() for _ in range(20)]
    try:
        for server, client in made:
            for sock in (server, client):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            client.settimeout(10)
        pairs = [open_pair(p) for p in made]
        fill(pairs[0])   # the loop's thread starts here, if it had not yet
        before = threading.active_count()
        for pair in pairs[1:]:
            fill(pair)
        assert threading.active_count() == before
    finally:
        for server, client in made:
            server.close()
            client.close()


def test_a_close_to_a_client_that_never_reads_returns_at_once_and_is_cut_at_its_timeout(
        ws: Pair) -> None:
    """The close frame cannot be written (the socket is full, the client does
    not read): ``close`` from another thread returns at once; the timeout,
    armed before the write, cuts the connection and the reader returns."""
    fill(ws)
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(ws.conn.receive()))
    reader.start()
    closer = threading.Thread(target=ws.conn.close, args=(1001, 'going away'))
    closer.start()
    closer.join(1.0)
    assert not closer.is_alive(), 'close waited on a client that does not read'
    reader.join(CLOSE_TIMEOUT + 5)
    assert not reader.is_alive(), 'the close timeout did not cut the connection'
    assert got == [None]
    assert ws.conn.end_reason is rfc6455.LOCAL_CLOSE


def test_a_close_on_the_reader_with_a_client_that_never_reads_ends_at_its_timeout(
        ws: Pair) -> None:
    fill(ws)
    def close_as_the_reader() -> None:
        ws.conn._reader = threading.get_ident()   # it reads until the end
        ws.conn.close()
    closer = threading.Thread(target=close_as_the_reader)
    closer.start()
    closer.join(CLOSE_TIMEOUT + 5)
    assert not closer.is_alive(), 'the close waited beyond its timeout'
    assert not ws.conn.open


def test_a_flush_waits_for_the_loop_and_returns_once_the_client_read_it(ws: Pair) -> None:
    sent = fill(ws)
    frames = written_by(ws.conn.flush, ws, len(sent))
    assert [f.payload for f in frames] == sent


# -- the frame of a message sent to many sessions ---------------------------------------

def websocket_session(sockets: tuple[socket.socket, socket.socket], **accept: Any
                      ) -> tuple[Session, Pair]:
    pair = open_pair(sockets, **accept)
    options = Options.from_kwargs(ping_interval=60.0, ping_timeout=60.0)
    session = Session('sid', PollingTransport, ThreadingBackend(), options,
                      on_message=lambda *a: None, on_close=lambda *a: None,
                      on_finished=lambda *a: None)
    session.outbox.clear()   # no open packet: the test reads messages only
    transport = WebSocketTransport(session, pair.conn, False)
    assert session.switch(transport)

    def idle() -> bool:
        with session.lock:
            return not transport.writing()
    # the writer task started by the switch found nothing to write
    wait_until(idle, message='the writer task done')
    return session, pair


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(5)]
    for _, client in made:
        client.settimeout(10)
    yield made
    for server, client in made:
        server.close()
        client.close()


@pytest.fixture
def frames_built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The messages whose frames were built (a spy on the real encoder)."""
    built: list[Any] = []
    real = rfc6455.data_frame

    def counting(message: Any) -> bytes:
        built.append(message)
        return real(message)
    monkeypatch.setattr(rfc6455, 'data_frame', counting)
    return built


def test_one_message_sent_to_many_sessions_is_framed_once(pairs, frames_built) -> None:
    sessions = [websocket_session(p) for p in pairs]
    text = 'hello everyone ' * 10
    data = b'\x00\xff' * 50
    for session, _ in sessions:
        assert session.enqueue(Packet(MSG, text))
    for session, _ in sessions:
        assert session.enqueue(Packet(MSG, data))
    assert frames_built == ['4' + text, data]
    for _, pair in sessions:
        assert [(f.opcode, f.payload) for f in read_frames(pair, 2)] == [
            (TEXT, b'4' + text.encode()), (BINARY, data)]


def test_equal_messages_of_different_objects_each_arrive(pairs, frames_built) -> None:
    sessions = [websocket_session(p) for p in pairs[:3]]
    texts = [''.join(['sa', 'me']) for _ in sessions]     # equal, not the same object
    assert len({id(t) for t in texts}) == len(texts)
    for (session, _), text in zip(sessions, texts, strict=True):
        session.enqueue(Packet(MSG, text))
    other = ''.join(['oth', 'er'])
    for session, _ in sessions:
        session.enqueue(Packet(MSG, other))
    assert frames_built == ['4same'] * 3 + ['4other']
    for _, pair in sessions:
        assert [f.payload for f in read_frames(pair, 2)] == [b'4same', b'4other']


def test_a_compressed_connection_frames_its_own_messages(pairs, frames_built) -> None:
    plain, plain_pair = websocket_session(pairs[0])
    deflated, deflated_pair = websocket_session(
        pairs[1], compression=True,
        headers={'SEC_WEBSOCKET_EXTENSIONS': 'permessage-deflate'})
    assert deflated_pair.conn.frame_encoder() is None
    text = 'compress me ' * 20
    plain.enqueue(Packet(MSG, text))
    deflated.enqueue(Packet(MSG, text))
    assert frames_built == ['4' + text]      # the plain one only
    assert read_frames(plain_pair, 1)[0].payload == b'4' + text.encode()
    frame = read_frames(deflated_pair, 1)[0]
    assert frame.rsv == 4   # RSV1: compressed, its own bytes
    inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(frame.payload + b'\x00\x00\xff\xff')
    assert inflated == b'4' + text.encode()


def test_the_loop_finishes_a_partly_written_frame_and_the_close_reply_behind_it(
        small_sockets: tuple[socket.socket, socket.socket]) -> None:
    """The client's close frame comes while a frame is partly written: the
    loop writes the rest, then the protocol's close reply, although the
    connection no longer takes new messages."""
    session, pair = websocket_session(small_sockets)
    sent = fill(pair)
    pair.peer.send(encode(CLOSE, b'\x03\xe8'))
    with pytest.raises(TimeoutError):   # read as its reader would; then waits for the end
        pair.conn.receive(timeout=0.3)
    assert not pair.conn.open
    frames = read_frames(pair, len(sent) + 1)   # the loop writes them: nobody else
    assert [f.payload for f in frames[:len(sent)]] == sent
    assert (frames[-1].opcode, frames[-1].payload) == (CLOSE, b'\x03\xe8')
    session.end()


@pytest.mark.parametrize('compression', [False, True])
def test_a_send_after_the_client_closed_ends_the_session_as_transport_close(
        pairs, compression: bool) -> None:
    """Plain frames or compressed ones: the send finds the connection closing,
    and the session ends (on a worker) as the reader would report it."""
    reasons: list[Any] = []
    accept: dict[str, Any] = {}
    if compression:
        accept = {'compression': True,
                  'headers': {'SEC_WEBSOCKET_EXTENSIONS': 'permessage-deflate'}}
    pair = open_pair(pairs[0], **accept)
    options = Options.from_kwargs(ping_interval=60.0, ping_timeout=60.0)
    session = Session('sid', PollingTransport, ThreadingBackend(), options,
                      on_message=lambda *a: None,
                      on_close=lambda _session, reason: reasons.append(reason),
                      on_finished=lambda *a: None)
    session.outbox.clear()
    assert session.switch(WebSocketTransport(session, pair.conn, False))
    pair.peer.send(encode(CLOSE, b'\x03\xe8'))
    # the connection reads the close (as its reader would) but the reader's
    # report is left out: the send is the first to find it
    with pytest.raises(TimeoutError):
        pair.conn.receive(timeout=0.3)
    assert not pair.conn.open
    session.enqueue(Packet(MSG, 'too late'))
    wait_until(lambda: session.ended, message='the session ended')
    # the end is reported on a worker, after the session has ended
    wait_until(lambda: reasons, message='the end was reported')
    assert reasons == [Reason.TRANSPORT_CLOSE]

