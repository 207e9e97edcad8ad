"""One Engine.IO session: its state, outgoing queue, heartbeat and dispatch.

Concurrency rules of this module:

- Session state changes only under ``self._lock``. Nothing blocks while holding
  it: no I/O, no user code, no logging that could block.
- The heartbeat is the session's one long-lived thread (greenlet under gevent).
  It runs on absolute monotonic deadlines anchored when ``open`` is sent, and it
  is the only thing that watches for timeouts (ping timeout, and the grace time
  of a closing session).
- Outgoing packets go through one ordered queue. On polling a GET drains it; on
  WebSocket a writer task, started when the queue stops being empty and gone
  when it is empty again, is the one writer, so frames never interleave and no
  thread is parked per session. It never runs on the connection's reader
  (only a WebSocket-only session's open packet is written there, before the
  connection is read). A client that stops reading blocks that task, which
  holds one of the backend's workers (in threading mode one of at most
  ``max_worker_threads``) until the session ends: its queue fills up ("send
  buffer full") or its ping times out, and the connection is cut.
- Pongs are handled on the I/O path (the POST or the WebSocket reader) and only
  record a time; messages reach the application off the I/O path, in order, by
  a worker started when the first one arrives and gone when the queue is
  empty: an idle session holds no dispatch thread.
- User callbacks (message, disconnect) never run under the lock.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .backends import Backend
from .options import Options
from .packets import DecodeError, Packet, PacketType

logger = logging.getLogger(__name__)

PING = Packet(PacketType.PING)
CLOSE = Packet(PacketType.CLOSE)
NOOP = Packet(PacketType.NOOP)


class Reason:
    """Why a session ended, as reported to the ``disconnect`` handler."""

    CLIENT_DISCONNECT = 'client disconnect'
    SERVER_DISCONNECT = 'server disconnect'
    PING_TIMEOUT = 'ping timeout'
    TRANSPORT_CLOSE = 'transport close'
    TRANSPORT_ERROR = 'transport error'
    PARSE_ERROR = 'parse error'
    PAYLOAD_TOO_LARGE = 'payload too large'
    SEND_BUFFER_FULL = 'send buffer full'
    SERVER_SHUTDOWN = 'server shutdown'


#: reasons after which a polling client is owed its close packet even if it has
#: no GET waiting: the session lingers until its next GET fetches it
_LINGERING_REASONS = frozenset({Reason.SERVER_DISCONNECT, Reason.SERVER_SHUTDOWN})


class State(enum.Enum):
    OPEN = 'open'
    CLOSING = 'closing'   # ended for the application; close packet not yet delivered
    CLOSED = 'closed'


class ProtocolViolation(Exception):
    """A client packet that is not allowed where it arrived."""


class Heartbeat:
    """When to ping and when the peer is late; pure, so a fake clock can drive it."""

    __slots__ = ('interval', 'timeout', 'deadline', 'awaiting_pong')

    def __init__(self, opened_at: float, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.deadline = opened_at + interval
        self.awaiting_pong = False

    def pong(self, now: float) -> bool:
        """Record a pong; False when no ping was outstanding."""
        if not self.awaiting_pong:
            return False
        self.awaiting_pong = False
        self.deadline = now + self.interval
        return True

    def due(self, now: float) -> str | None:
        """'ping' when a ping must go out now, 'timeout' when the pong is late."""
        if now < self.deadline:
            return None
        if self.awaiting_pong:
            return 'timeout'
        self.awaiting_pong = True
        # anchored to when the ping was due, not to when this thread woke up
        self.deadline += self.timeout
        return 'ping'


Writer = Callable[[list[Packet]], None]


class Transport(Protocol):
    """The connection a WebSocket session writes to."""

    def close(self) -> None:
        """Close gracefully (may wait a bounded time for a writer)."""

    def abort(self) -> None:
        """Cut the connection now; never blocks."""


class Session:
    """A session's state; owned by a ``Server``, driven by the transports."""

    def __init__(
        self,
        sid: str,
        transport: str,
        backend: Backend,
        options: Options,
        *,
        on_message: Callable[[Session, str | bytes], None],
        on_close: Callable[[Session, str], None],
        on_finished: Callable[[Session], None],
        client: str = '',
    ) -> None:
        self.sid = sid
        #: the client's address, for per-client limits
        self.client = client
        self.transport = transport
        self.backend = backend
        self.options = options
        self.state = State.OPEN
        self.upgrading = False
        #: reserved by the first WebSocket that asks to upgrade this session
        self.probe_taken = False
        #: the application's own data (``get_session`` / ``save_session``)
        self.user_data: dict[str, Any] = {}
        self._on_message = on_message
        self._on_close = on_close
        self._on_finished = on_finished
        self._lock = backend.lock()
        self._outbox: deque[Packet] = deque([Packet(PacketType.OPEN, '')])
        self._wake = backend.event()        # a waiting GET
        self._hb_wake = backend.event()     # the heartbeat
        self._heartbeat: Heartbeat | None = None
        self._closing_deadline = 0.0
        self._polling_get = False
        self._poll_generation = 0
        self._poll_peer_gone: Callable[[], bool] | None = None
        self._polling_post = False
        self._post_abort: Callable[[], None] | None = None
        self._post_deadline = 0.0
        self._writer: Writer | None = None
        self._transport: Transport | None = None
        self._flushing = False
        self._inbox: deque[Any] = deque()
        self._dispatching = False
        self._notified = False
        #: set when the session is to end once the messages received so far
        #: were handled (a parse error): nothing more is taken from the client
        self._ending: str | None = None
        self._finished = False
        rate = options.message_rate_limit
        self._rate = RateLimit(rate[0], rate[1], backend.monotonic()) if rate else None

    # -- life cycle -------------------------------------------------------------

    def set_open_packet(self, data: str) -> None:
        """Fill in the ``open`` packet, which is always first in the queue."""
        with self._lock:
            self._outbox[0] = Packet(PacketType.OPEN, data)

    def start(self) -> None:
        """Start the heartbeat; the ``open`` packet counts as sent now."""
        opts = self.options
        self._heartbeat = Heartbeat(self.backend.monotonic(), opts.ping_interval,
                                    opts.ping_timeout + opts.ping_grace)
        self.backend.spawn(self._heartbeat_loop)

    def close(self, reason: str, *, farewell: bool = True, abort: bool = False,
              linger: bool = False) -> bool:
        """End the session; never blocks on a client. False if it had ended already.

        ``farewell=False`` when the transport is known to be broken: nothing
        more is written to it. ``abort=True`` (with ``farewell=False``) cuts
        the connection at once: for a client that stopped reading, whose
        writer a graceful close would wait on. ``linger=True`` when a polling
        client is owed its close packet (after what is still queued): the
        session then waits for its next GET, as after a server disconnect.

        The client is told with a close packet where a transport can carry one:
        on WebSocket it follows whatever is queued, then the socket closes; on
        polling a waiting GET receives it, and after a server disconnect the
        session lingers until the next GET fetches it (bounded by
        pingInterval + pingTimeout).
        """
        flush = False
        with self._lock:
            if self.state is not State.OPEN:
                return False
            if not farewell:
                self.state = State.CLOSED
            elif self._writer is not None:
                self._outbox.append(CLOSE)
                self.state = State.CLOSING
                flush = not self._flushing
                self._flushing = True
            elif self._polling_get or linger or reason in _LINGERING_REASONS:
                self._outbox.append(CLOSE)
                self.state = State.CLOSING
            else:
                self.state = State.CLOSED
            self._closing_deadline = (self.backend.monotonic() + self.options.ping_interval
                                      + self.options.ping_timeout)
            finished = self.state is State.CLOSED
        logger.info('%s closed: %s', self.sid, reason)
        self._wake.set()
        self._hb_wake.set()
        self._notify_closed(reason)
        if finished:
            self._finish(abort=abort)
        elif flush:
            # the caller must not wait on a slow client: write from elsewhere
            self.backend.run_soon(self._flush)
        return True

    def close_after_dispatch(self, reason: str) -> None:
        """End the session once the messages received so far were handled.

        What the application sends while handling them reaches the client
        before the close packet. From now on nothing more from the client
        reaches the application.
        """
        with self._lock:
            if self.state is not State.OPEN or self._ending is not None:
                return
            self._ending = reason
            later = self._dispatching
            if later:
                # the dispatch worker closes the session when it gets here
                self._inbox.append(_CloseLater(reason))
        if not later:
            self.close(reason, linger=True)

    def end(self) -> None:
        """Drop the session now, whatever its state: nothing more is sent,
        and nothing waits for the client."""
        self.close(Reason.SERVER_SHUTDOWN, farewell=False, abort=True)
        self._finish(abort=True)

    def _finish(self, abort: bool = False) -> None:
        """Release everything; the session is gone for good. Idempotent.

        ``abort=True`` cuts the transport at once instead of closing it
        gracefully: for a client that does not read, where a graceful close
        would wait on the writer stuck on it.
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self.state = State.CLOSED
            self._outbox.clear()
            transport, self._transport = self._transport, None
            self._writer = None
        self._wake.set()
        self._hb_wake.set()
        if transport is not None:
            try:
                transport.abort() if abort else transport.close()
            except Exception:
                logger.debug('%s error while closing the transport', self.sid, exc_info=True)
        self._on_finished(self)

    @property
    def closed(self) -> bool:
        """No longer open: closing (a close packet still to deliver) or closed."""
        return self.state is not State.OPEN

    @property
    def ended(self) -> bool:
        """Closed for good: nothing more is delivered."""
        return self.state is State.CLOSED

    # -- heartbeat --------------------------------------------------------------

    def heartbeat_step(self) -> float | None:
        """Do what is due now; return the next deadline, or None when done.

        A POST still reading its body is watched until it ends, also after
        the session ended: its thread must be released either way.
        """
        now = self.backend.monotonic()
        with self._lock:
            abort = None
            if self._post_abort is not None and now >= self._post_deadline:
                abort, self._post_abort = self._post_abort, None
        if abort is not None:
            logger.debug('%s POST body too slow; dropping it', self.sid)
            abort()
        deadline = self._next_deadline(now)
        with self._lock:
            if self._post_abort is None:
                return deadline
            if deadline is None:
                return self._post_deadline
            return min(deadline, self._post_deadline)

    def _next_deadline(self, now: float) -> float | None:
        with self._lock:
            if self.state is State.CLOSED:
                return None
            if self.state is State.CLOSING:
                if now < self._closing_deadline:
                    return self._closing_deadline
                action = 'finish'
            else:
                assert self._heartbeat is not None
                action = self._heartbeat.due(now) or 'wait'
                deadline = self._heartbeat.deadline
                # a WebSocket write still under way: the client reads nothing
                stuck = self._writer is not None and self._flushing
        if action == 'ping':
            self.enqueue(PING)
            return deadline
        if action == 'timeout':
            if stuck:
                # No close packet can reach a client that stopped reading, and
                # the stuck write holds a worker (a pool thread in threading
                # mode): cut the connection now instead of lingering.
                self.close(Reason.PING_TIMEOUT, farewell=False, abort=True)
            else:
                self.close(Reason.PING_TIMEOUT)
            return self.backend.monotonic()  # come back to see if it lingers
        if action == 'finish':
            logger.debug('%s close packet was not fetched in time', self.sid)
            self._finish(abort=True)
            return None
        return deadline

    def _heartbeat_loop(self) -> None:
        monotonic = self.backend.monotonic
        wake = self._hb_wake
        try:
            while True:
                wake.clear()
                deadline = self.heartbeat_step()
                if deadline is None:
                    return
                delay = deadline - monotonic()
                if delay > 0:
                    wake.wait(delay)
        except Exception:
            logger.exception('%s heartbeat failed', self.sid)
            self.close(Reason.TRANSPORT_ERROR, farewell=False)
            self._finish()

    def pong(self) -> None:
        with self._lock:
            if self._heartbeat is None or not self._heartbeat.pong(self.backend.monotonic()):
                return
        self._hb_wake.set()

    # -- outgoing ---------------------------------------------------------------

    def enqueue(self, packet: Packet) -> bool:
        """Queue a packet for the client; False when the session has ended."""
        with self._lock:
            if self.state is not State.OPEN:
                return False
            if len(self._outbox) >= self.options.max_queued_packets:
                overflow = True
            else:
                overflow = False
                self._outbox.append(packet)
                flush = self._writer is not None and not self._flushing
                if flush:
                    self._flushing = True
        if overflow:
            # the client does not keep up: it will not read a close packet either
            self.close(Reason.SEND_BUFFER_FULL, farewell=False, abort=True)
            return False
        if flush:
            # never on the caller's thread: a client that stops reading must
            # not block whoever sends to it
            self.backend.run_soon(self._flush)
        else:
            self._wake.set()
        return True

    def _flush(self) -> None:
        """Write the queue to the WebSocket until it is empty; one caller at a time."""
        while True:
            with self._lock:
                writer = self._writer
                if not self._outbox or writer is None:
                    self._flushing = False
                    done = self.state is State.CLOSING and writer is not None
                    break
                batch = list(self._outbox)
                self._outbox.clear()
                self._flushing = True
            try:
                writer(batch)
            except Exception as exc:
                self._write_failed(exc)
                return
        if done:
            self._finish()

    def _write_failed(self, exc: Exception) -> None:
        logger.debug('%s write failed: %r', self.sid, exc)
        with self._lock:
            self._flushing = False
        # the writer may find the client's close before the reader reports it
        reason = (Reason.TRANSPORT_CLOSE if isinstance(exc, TransportClosed)
                  else Reason.TRANSPORT_ERROR)
        self.close(reason, farewell=False, abort=True)
        self._finish(abort=True)   # when it had ended already

    def use_writer(self, writer: Writer, transport: Transport) -> None:
        """Send everything from now on, and everything still queued, with ``writer``."""
        with self._lock:
            if self.state is State.CLOSED:
                raise_closed = True
            else:
                raise_closed = False
                self._writer = writer
                self._transport = transport
                self.transport = 'websocket'
                self.upgrading = False
                self._flushing = True
                opening = (self._outbox.popleft()
                           if self._outbox and self._outbox[0].type is PacketType.OPEN else None)
        if raise_closed:
            transport.close()
            return
        self._wake.set()
        if opening is not None:
            # A session that starts on WebSocket: its open packet goes out
            # now, before the connection is read, so that a client always
            # learns its sid before anything else happens on the connection
            # (one small frame: it cannot keep the reader waiting).
            try:
                writer([opening])
            except Exception as exc:
                self._write_failed(exc)
                return
        # not here: the caller is the connection's reader, and an application
        # that keeps the queue full would keep it from reading (pongs) forever
        self.backend.run_soon(self._flush)

    # -- polling ----------------------------------------------------------------

    def poll(self, peer_gone: Callable[[], bool] | None = None) -> list[Packet]:
        """Wait for packets for a long-polling GET.

        ``peer_gone`` tells whether this GET's client has dropped the
        connection. A second GET while one waits raises ``DuplicateRequest``,
        unless the waiting one was abandoned: then the new one takes over.
        """
        generation = self._claim_poll(peer_gone)
        limit = self.options.max_packets_per_poll
        # a GET never outlives the heartbeat's verdict on its session
        deadline = self.backend.monotonic() + self.options.ping_interval + self.options.ping_timeout
        finish = False
        checked = peer_gone is None
        try:
            while True:
                with self._lock:
                    if generation != self._poll_generation:
                        return [NOOP]   # taken over by a newer GET
                    if self.upgrading or self.transport != 'polling':
                        return [NOOP]
                    if self._outbox and checked:
                        take = min(limit, len(self._outbox))
                        packets = [self._outbox.popleft() for _ in range(take)]
                        finish = self.state is State.CLOSING and not self._outbox
                        return packets
                    ready = bool(self._outbox)
                    if not ready:
                        if self.state is not State.OPEN:
                            return [NOOP]
                        self._wake.clear()
                if ready:
                    # packets handed to a dropped connection would be lost
                    if peer_gone():  # type: ignore[misc]
                        return [NOOP]
                    checked = True
                    continue
                checked = peer_gone is None
                remaining = deadline - self.backend.monotonic()
                if remaining <= 0:
                    return [NOOP]
                self._wake.wait(remaining)
        finally:
            with self._lock:
                if generation == self._poll_generation:
                    self._polling_get = False
                    self._poll_peer_gone = None
            if finish:
                self._finish()

    def _claim_poll(self, peer_gone: Callable[[], bool] | None) -> int:
        """Become the session's one waiting GET; returns this GET's generation."""
        while True:
            with self._lock:
                if not self._polling_get:
                    self._polling_get = True
                    self._poll_generation += 1
                    self._poll_peer_gone = peer_gone
                    return self._poll_generation
                waiting_gone = self._poll_peer_gone
            if waiting_gone is None or not waiting_gone():
                raise DuplicateRequest()
            with self._lock:
                if self._poll_peer_gone is waiting_gone:
                    self._polling_get = False   # the abandoned GET leaves empty-handed
                    self._poll_generation += 1
            self._wake.set()

    def begin_post(self, abort: Callable[[], None] | None = None) -> None:
        """A POST starts; ``abort`` cuts its connection if the body is too slow.

        ``abort`` may be called (from the heartbeat) until ``end_post``; it
        must itself do nothing once the request's body reading is over.

        Raises ``SessionEnded`` when the session no longer takes client input.
        """
        with self._lock:
            if self.state is not State.OPEN or self._ending is not None:
                raise SessionEnded()
            duplicate = self._polling_post
            if not duplicate:
                self._polling_post = True
                self._post_abort = abort
                self._post_deadline = self.backend.monotonic() + self.options.http_body_timeout
        if duplicate:
            raise DuplicateRequest()
        if abort is not None:
            self._hb_wake.set()

    def end_post(self) -> None:
        with self._lock:
            self._polling_post = False
            watched = self._post_abort is not None
            self._post_abort = None
        if watched:
            self._hb_wake.set()   # a heartbeat kept only for this POST can end

    def check_text(self, data: str) -> None:
        """The polling payload cannot carry a record separator inside text."""
        if '\x1e' in data and self.transport == 'polling':
            raise ValueError('text sent over long-polling cannot contain "\\x1e"')

    # -- upgrade ----------------------------------------------------------------

    def reserve_probe(self) -> bool:
        """Claim this session for one upgrading WebSocket; False if one has it."""
        with self._lock:
            if self.probe_taken or self.state is not State.OPEN or self.transport != 'polling':
                return False
            self.probe_taken = True
            return True

    def start_upgrade(self) -> None:
        """``2probe`` arrived: pending and new GETs answer ``noop`` at once."""
        with self._lock:
            self.upgrading = True
        self._wake.set()

    def abort_upgrade(self) -> None:
        """The probe failed or timed out: carry on over polling."""
        with self._lock:
            self.upgrading = False
            self.probe_taken = False
        self._wake.set()

    # -- incoming ---------------------------------------------------------------

    def receive(self, packet: Packet) -> None:
        """Handle one packet from the client (POST or upgraded WebSocket)."""
        kind = packet.type
        if kind is PacketType.MESSAGE:
            if self._rate is not None and not self._rate.allow(self.backend.monotonic()):
                raise RateLimited('message rate limit exceeded')
            self._dispatch(packet.data)  # type: ignore[arg-type]
        elif kind is PacketType.PONG:
            self.pong()
        elif kind is PacketType.CLOSE:
            # the client is leaving: nothing more is sent to it (a waiting GET gets noop)
            self.close(Reason.CLIENT_DISCONNECT, farewell=False)
        elif kind is PacketType.UPGRADE or kind is PacketType.NOOP:
            pass
        else:
            raise ProtocolViolation(f'unexpected {kind.name} packet from the client')

    def _dispatch(self, data: str | bytes) -> None:
        if self.state is not State.OPEN or self._ending is not None:
            logger.debug('%s message after the end dropped', self.sid)
            return
        if not self.options.async_handlers:
            self._on_message(self, data)
            return
        with self._lock:
            self._inbox.append(data)
            start = not self._dispatching
            self._dispatching = True
        if start:
            self.backend.run_soon(self._drain)

    def _notify_closed(self, reason: str) -> None:
        """Report the end once; after the messages already received, if any.

        A server disconnect is reported at the call, as the caller expects;
        messages not yet handled are then dropped.
        """
        with self._lock:
            queue_it = (self._dispatching and reason != Reason.SERVER_DISCONNECT
                        and reason != Reason.SERVER_SHUTDOWN)
            if queue_it:
                self._inbox.append(_Closed(reason))
            else:
                self._notified = True
                self._inbox.clear()
        if not queue_it:
            self._on_close(self, reason)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._inbox:
                    self._dispatching = False
                    return
                item = self._inbox.popleft()
                if isinstance(item, _Closed):
                    self._notified = True
            if isinstance(item, _CloseLater):
                self.close(item.reason, linger=True)
            elif isinstance(item, _Closed):
                self._on_close(self, item.reason)
            elif not self._notified:
                self._on_message(self, item)


class RateLimit:
    """A token bucket: ``count`` messages per ``seconds``, bursts up to ``count``."""

    __slots__ = ('capacity', 'rate', 'tokens', 'updated')

    def __init__(self, count: int, seconds: float, now: float) -> None:
        self.capacity = float(count)
        self.rate = count / seconds
        self.tokens = float(count)
        self.updated = now

    def allow(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class RateLimited(ProtocolViolation):
    """The client sent messages faster than ``message_rate_limit`` allows."""


def reason_for(error: Exception) -> str:
    """Why a session closes for bad client input: one answer for every transport."""
    if isinstance(error, RateLimited):
        return Reason.TRANSPORT_ERROR
    if isinstance(error, (DecodeError, ProtocolViolation)):
        return Reason.PARSE_ERROR
    return Reason.TRANSPORT_ERROR


class _Closed:
    __slots__ = ('reason',)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _CloseLater:
    __slots__ = ('reason',)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class DuplicateRequest(Exception):
    """A second GET or POST while one is in progress on the same session."""


class SessionEnded(Exception):
    """A request for a session that has ended or is about to."""


class TransportClosed(ConnectionError):
    """Raised by a writer whose client closed the transport: the session then
    ends as "transport close", the reason its reader would report."""
