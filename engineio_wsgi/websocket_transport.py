"""The WebSocket transport: WebSocket-only sessions and the upgrade from polling.

The request's own thread (or greenlet) reads the socket for the whole life of
the WebSocket. Nothing waits on a client to write: whoever queues a packet
while nobody writes takes the writer's turn (output.py) and writes one batch
without waiting; what the socket does not take, and what is queued while it
waits, goes out from the process's I/O loop (ioloop.py) when the socket has
room, and the loop hands the turn back here. A client that stops reading
holds no thread and no worker: its queue fills up ("send buffer full") or its
ping times out, and the connection is cut. The end of a session (its
disconnect handler, the close of the connection) runs on a worker, never on
the loop or the sender's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from . import locks, rfc6455, trace, wsgi_servers
from .errors import BadRequest
from .lifecycle import State
from .options import Options
from .output import Move, step
from .packets import DecodeError, Packet, PacketType, decode_packet, encode_packet
from .reasons import Reason
from .request import Request
from .response import StartResponse
from .session import Session
from .transport import ProtocolViolation, QueueWriter, TransportClosed

logger = logging.getLogger(__name__)

_PROBE = 'probe'
_PROBE_ANSWER = Packet(PacketType.PONG, _PROBE)
_MESSAGE = PacketType.MESSAGE
_OPEN_STATES = (State.OPEN, State.DRAINING)
#: ends of a connection that its reader reports with their own reason
_READER_REPORTS = (rfc6455.PROTOCOL_ERROR, rfc6455.MESSAGE_TOO_BIG)


def open_session(session: Session, request: Request,
                 start_response: StartResponse) -> Iterable[bytes]:
    """A session that starts on WebSocket: ``open`` is its first frame."""
    try:
        conn = accept(session.options, session.backend.name, request)
    except BaseException:
        session.close(Reason.TRANSPORT_ERROR, farewell=False)
        raise
    on_loop = False
    try:
        transport = WebSocketTransport(session, conn, request.b64)
        if session.switch(transport):
            on_loop = transport.serve()
    except Exception:
        logger.exception('%s WebSocket failed', session.sid)
        session.close(Reason.TRANSPORT_ERROR, farewell=False)
    finally:
        if not on_loop:
            conn.close()
    return request.adapter.finish_takeover(start_response)


def upgrade(session: Session, request: Request,
            start_response: StartResponse) -> Iterable[bytes]:
    """A WebSocket for a polling session: the probe, then the switch."""
    options = session.options
    backend = session.backend
    if not options.allow_upgrades:
        raise BadRequest('upgrades are turned off')
    polling = session.polling
    if polling is None or not polling.reserve_probe():
        # as the reference server does: clients take an HTTP error here for a
        # failed connection, a closed WebSocket for a redundant one
        return accept_and_close(options, backend.name, request, start_response,
                                'session is upgrading or upgraded already')
    try:
        conn = accept(options, backend.name, request)
    except BaseException:
        polling.resume()
        raise
    upgraded = on_loop = False
    try:
        upgraded = probe(session, conn, backend.monotonic() + options.upgrade_timeout,
                         backend.monotonic, options.trace)
        if upgraded:
            transport = WebSocketTransport(session, conn, request.b64)
            if session.switch(transport):
                logger.info('%s upgraded to websocket', session.sid)
                on_loop = transport.serve()
    except Exception:
        logger.exception('%s WebSocket failed', session.sid)
        if upgraded:
            session.close(Reason.TRANSPORT_ERROR, farewell=False)
    finally:
        if not upgraded:
            polling.resume()
        if not on_loop:
            conn.close()
    return request.adapter.finish_takeover(start_response)


def refuse_after_upgrade(request: Request, start_response: StartResponse,
                         reason: str) -> Iterable[bytes] | None:
    """Refuse a WebSocket whose 101 the server sent already: close it at once.

    None when an HTTP refusal is still possible.
    """
    if not request.adapter.upgraded:
        return None
    try:
        conn = rfc6455.accept(request, max_message_size=None)
        conn.close(1008, reason[:100])
    except Exception:
        logger.debug('closing a refused WebSocket failed', exc_info=True)
    return request.adapter.finish_takeover(start_response)


def accept_and_close(options: Options, backend_name: str, request: Request,
                     start_response: StartResponse, reason: str) -> Iterable[bytes]:
    """Complete the handshake (101), then close the WebSocket at once."""
    conn = accept(options, backend_name, request)
    logger.debug('%s second WebSocket closed: %s', request.sid, reason)
    conn.close(1008, reason)
    return request.adapter.finish_takeover(start_response)


def accept(options: Options, backend_name: str, request: Request) -> rfc6455.WSConnection:
    """Complete a WebSocket handshake on the request's socket; ``BadRequest`` if it fails."""
    try:
        return rfc6455.accept(request,
                              max_message_size=options.max_http_buffer_size,
                              compression=options.websocket_compression,
                              backend_hint=backend_name)
    except rfc6455.HandshakeError as exc:
        raise BadRequest(f'WebSocket handshake failed: {exc.message}') from None
    except rfc6455.ConnectionClosed as exc:
        # the client left before its 101: nothing to answer, nothing to trace
        logger.info('WebSocket handshake not completed: %s (%s)', exc, exc.__cause__)
        # no 101 went out: the client is gone, as servers take a broken pipe
        raise wsgi_servers.WebSocketTakenOver() from None


#: the frame of the last message written: (data, b64, frame bytes). python-socketio
#: sends one emit to a room as one send per session with the same data object,
#: so its frame is built once; the reference keeps that object alive, so an
#: identity match is the same message. Replaced whole (one assignment), never
#: changed in place: safe to read from any thread.
_last_frame: tuple[Any, bool, bytes] = (None, False, b'')


def _message_frame(packet: Packet, b64: bool, encode: Any) -> bytes:
    """The frame of ``packet`` (a message), shared with the last one of the same data."""
    global _last_frame
    data = packet.data
    last = _last_frame
    if last[0] is data and last[1] is b64:
        return last[2]
    frame: bytes = encode(encode_packet(packet, b64=b64))
    _last_frame = (data, b64, frame)
    return frame


def write_batch(conn: rfc6455.WSConnection, b64: bool,
                encode: Callable[[str | bytes], bytes] | None,
                batch: list[Packet], block: bool = True) -> bool:
    """The batch as frames on ``conn``, True once all were written; with
    ``block=False`` it never waits, and False means frames wait in the
    connection's queue for a write that blocks. ``encode``: the connection's
    ``frame_encoder()`` (None: frames depend on the connection)."""
    try:
        if encode is None:
            return conn.send_many([encode_packet(packet, b64=b64) for packet in batch], block)
        return conn.send_frames([_message_frame(packet, b64, encode) if packet.type is _MESSAGE
                                 else encode(encode_packet(packet, b64=b64))
                                 for packet in batch], block)
    except rfc6455.ConnectionClosed as exc:
        error = _transport_error(conn, exc)
        if error is exc:
            raise
        raise error from exc


def _transport_error(conn: rfc6455.WSConnection, exc: rfc6455.ConnectionClosed) -> Exception:
    """``TransportClosed`` when the client closed or left (the session ends as
    "transport close"), else ``exc`` itself."""
    if conn.end_reason in (rfc6455.PEER_CLOSE, rfc6455.CONNECTION_LOST):
        return TransportClosed('the client closed the WebSocket')
    return exc


def probe(session: Session, conn: rfc6455.WSConnection, deadline: float,
          monotonic: Any, traced: bool = False) -> bool:
    """Run the probe exchange; True once the client sent ``5``. ``traced``:
    the packet trace is on (the session receives none of these packets)."""
    polling = session.polling
    assert polling is not None
    while True:
        remaining = deadline - monotonic()
        if remaining <= 0:
            logger.debug('%s upgrade timed out', session.sid)
            return False
        try:
            frame = conn.receive(timeout=remaining)
        except TimeoutError:
            logger.debug('%s upgrade timed out', session.sid)
            return False
        if frame is None:
            return False
        try:
            packet = decode_packet(frame)
        except DecodeError:
            return False
        if traced:
            trace.received(session.sid, 'websocket', packet)
        kind = packet.type
        if kind is PacketType.PING and packet.data == _PROBE and not polling.paused:
            if traced:
                trace.sending(session.sid, 'websocket', _PROBE_ANSWER)
            try:
                # never waits: the rest goes out from the loop
                conn.send_many((encode_packet(_PROBE_ANSWER),), block=False)
            except OSError:
                return False
            polling.pause()
        elif kind is PacketType.UPGRADE:
            # also without a probe first, as the reference server does; and
            # for a session ending meanwhile (a disconnect() during the probe):
            # the client has switched, so its close packet goes this way
            return not session.ended
        elif kind in (PacketType.CLOSE, PacketType.PING, PacketType.OPEN):
            return False
        # messages, pongs and noops before the upgrade are ignored


class WebSocketTransport(QueueWriter):
    """How a session's packets move over its WebSocket: the holder of the
    writer's turn (output.py) writes a batch as frames without waiting;
    what the socket does not take goes out from the I/O loop, which hands
    the turn back here once it is out."""

    __slots__ = ('_conn', '_b64', '_encode')

    def __init__(self, session: Session, conn: rfc6455.WSConnection, b64: bool) -> None:
        super().__init__(session)
        self._conn = conn
        self._b64 = b64
        # None: frames depend on the connection (compression)
        self._encode = conn.frame_encoder()

    # -- the transport interface (see transport.py) -------------------------------

    def send(self) -> None:
        # The caller took the turn: it writes one batch itself, without
        # waiting (a broadcast to thousands of sessions, a heartbeat's ping:
        # no task, no thread switch); anything more goes out from the loop.
        self._write_turn()

    def _write_turn(self) -> None:
        """One batch, written without waiting, by the holder of the turn;
        the turn then passes to the loop or is given back."""
        session = self._session
        with self._lock:
            item = self._take()
        if item is None:
            return
        batch, closes = item
        conn = self._conn
        try:
            done = write_batch(conn, self._b64, self._encode, batch, block=False)
        except Exception as exc:
            if isinstance(exc, rfc6455.ConnectionClosed) and conn.end_reason in _READER_REPORTS:
                # the reader found why the connection ended: it reports it
                with self._lock:
                    self.output = step(self.output, Move.END)
                return
            # the session ends on a worker: not on the sender's thread nor
            # the loop (the disconnect handler runs there)
            session.backend.run_soon(self._failed, exc)
            return
        if closes:
            # the session's end (and the connection's close) on a worker
            if done:
                session.backend.run_soon(self._delivered)
            else:
                conn.when_drained(self._close_out)
            return
        if not done:
            conn.when_drained(self._write_turn)
            return
        with self._lock:
            more = bool(session.outbox) and session.state is not State.FINISHED
            if not more:
                item = self._take()   # gives the turn back
                assert item is None
        if more:
            # queued meanwhile: the loop writes it, the caller goes on
            conn.call_soon(self._write_turn)

    def _close_out(self) -> None:
        self._session.backend.run_soon(self._delivered)

    def carries_close(self, reason: Reason) -> bool:
        assert not locks.CHECK or locks.held(self._lock)
        return True

    def attached(self, opening: Packet | None) -> None:
        # On the connection's reader, before it reads: a session that starts
        # on WebSocket has its open packet written first, so that a client
        # learns its sid before anything else happens on the connection. One
        # batch here at most: an application that keeps the queue full must
        # not keep the reader from reading (pongs).
        if opening is not None:
            with self._lock:
                self._session.outbox.appendleft(opening)
        self._write_turn()

    def wake(self) -> None:
        pass

    def close(self) -> None:
        self._conn.close()

    def abort(self) -> None:
        self._conn.abort()

    # -- reading ----------------------------------------------------------------------

    def serve(self) -> bool:
        """Read packets until the connection or the session ends; True when
        the loop reads them from now on and the request may return at once
        (threads, where the application's handlers run on the pool), False
        once the reading on this request is over."""
        session, conn = self._session, self._conn
        if session.options.async_handlers and conn.detach(self._received, self._ended):
            return True
        while True:
            frame = conn.receive()
            if frame is None:
                _report_end(session, conn)
                return False
            _received(session, frame)

    def _received(self, frame: str | bytes) -> None:
        """On the loop: one message read."""
        try:
            _received(self._session, frame)
        except Exception:
            logger.exception('%s WebSocket failed', self._session.sid)
            self._session.close(Reason.TRANSPORT_ERROR, farewell=False)
            self._conn.abort()

    def _ended(self) -> None:
        """On the loop: the connection is over."""
        _report_end(self._session, self._conn)


def _received(session: Session, frame: str | bytes) -> None:
    """One message read from the client's connection."""
    try:
        session.receive(decode_packet(frame))
    except (DecodeError, ProtocolViolation) as exc:   # RateLimited included
        logger.debug('%s bad packet: %s', session.sid, exc)
        # once the messages before it were handled, the close packet goes
        # out after their replies, then the connection closes and the end
        # is read
        session.bad_input(exc)


def _report_end(session: Session, conn: rfc6455.WSConnection) -> None:
    if conn.end_reason == rfc6455.MESSAGE_TOO_BIG:
        session.transport_closed(Reason.PAYLOAD_TOO_LARGE)
    else:
        session.transport_closed(Reason.TRANSPORT_CLOSE)
