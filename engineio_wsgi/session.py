"""One Engine.IO session: its life cycle, outgoing queue, heartbeat and dispatch.

How bytes move is the transport's business (transport.py): the session holds
one transport at a time and swaps it on upgrade.

Concurrency rules of this module:

- Session state changes only under ``self.lock``, through the table of
  lifecycle.py. The transports, the heartbeat and the dispatcher keep their
  own fields under the same lock (one lock per session: no extra lock on a
  hot path). Nothing blocks while holding it: no I/O, no user code, no
  logging that could block.
- Outgoing packets go through one ordered queue, which the transport
  drains: a GET on polling, a writer task on WebSocket (see websocket_transport.py).
  Thousands of sessions are held at once, mostly idle: ``Session`` has fixed
  fields (``__slots__``), and its queue holds no buffer while empty (fifo.py).
- Pongs are handled on the I/O path (the POST or the WebSocket reader) and
  only record a time; messages reach the application off the I/O path, in
  order (dispatch.py).
- User callbacks (message, disconnect) never run under the lock. ``close``
  runs none of them either (dispatch.py reports the end on the backend's
  pool), except for a server disconnect or a shutdown, reported at the call:
  a ``send()`` that finds the queue full, the heartbeat and a transport's
  reader or writer can close a session without running application code.
- Whoever moves the state to ``FINISHED`` releases the session, once, after
  the lock is released.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import locks, trace
from .backends import Backend
from .dispatch import Dispatcher, RateLimit
from .fifo import Fifo
from .heartbeat import Heartbeat, HeartbeatTask
from .lifecycle import ENDED_STATES, OPEN_STATES, Event, State, step
from .options import Options
from .packets import Packet, PacketType
from .reasons import Reason
from .transport import (
    DuplicateRequest,
    ProtocolViolation,
    RateLimited,
    SessionEnded,
    Transport,
    TransportClosed,
    Upgradable,
    reason_for,
)

logger = logging.getLogger(__name__)

CLOSE = Packet(PacketType.CLOSE)
_OPEN = State.OPEN
_DRAINING = State.DRAINING

__all__ = ['DuplicateRequest', 'Heartbeat', 'ProtocolViolation', 'RateLimit', 'RateLimited',
           'Reason', 'Session', 'SessionEnded', 'State', 'TransportClosed', 'reason_for']


class Session:
    """A session's protocol state; owned by a ``Server``, driven by its transport."""
    __slots__ = ('sid', 'client', 'backend', 'options', 'state', 'user_data', 'lock', 'polling',
                 'outbox', 'closing_deadline', '_on_finished', 'heartbeat', 'dispatcher', 'channel')

    def __init__(
        self,
        sid: str,
        transport: Callable[[Session], Transport],
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
        self.backend = backend
        self.options = options
        self.state = State.OPEN
        #: the application's data (``get_session``), made when first asked for
        self.user_data: dict[str, Any] | None = None
        self.lock = locks.guarded(backend.lock())
        #: what the client is still to receive, oldest first; guarded by the lock
        self.outbox: Fifo[Packet] = Fifo([Packet(PacketType.OPEN, '')])
        #: when a closing session stops waiting for its close packet to be fetched
        self.closing_deadline = 0.0
        #: the long-polling transport the session started on, kept after an
        #: upgrade so that the requests under way finish on it
        self.polling: Upgradable | None = None
        self._on_finished = on_finished
        self.heartbeat = HeartbeatTask(self)
        self.dispatcher = Dispatcher(self, on_message, on_close)
        #: the transport carrying the session now
        self.channel: Transport = transport(self)

    @property
    def transport(self) -> str:
        """'polling' or 'websocket'."""
        return self.channel.name

    @property
    def upgrading(self) -> bool:
        """A WebSocket probe succeeded; the switch is not done yet."""
        polling = self.polling
        return polling is not None and polling.paused and self.channel is polling

    @property
    def closed(self) -> bool:
        """No longer open: closing (a close packet still to deliver) or ended."""
        return self.state not in OPEN_STATES

    @property
    def ended(self) -> bool:
        """Closed for good: nothing more is delivered."""
        return self.state in ENDED_STATES

    def admits(self, polling_get: bool) -> bool:
        """Whether a new request for this session is served; else it gets
        400 code 1 (unknown sid). Only an open session takes requests, but
        a closing one on polling still hands its close packet (and what is
        queued before it) to a GET; a draining one (after a parse error)
        takes none: it is gone for the client. An open session whose pong
        is overdue ends now (ping timeout), should its heartbeat be late."""
        state = self.state
        if state is _OPEN:
            if not self.heartbeat.late():
                return True
            self.close(Reason.PING_TIMEOUT)
            return False
        return state is State.CLOSING and polling_get and self.channel.name == 'polling'

    # -- life cycle -------------------------------------------------------------

    def _step(self, event: Event) -> None:
        """Move the state through the table. Caller holds the lock."""
        assert not locks.CHECK or locks.held(self.lock)
        self.state = step(self.state, event)

    def set_open_packet(self, data: str) -> None:
        """Fill in the ``open`` packet, which is always first in the queue."""
        with self.lock:
            self.outbox[0] = Packet(PacketType.OPEN, data)

    def start(self) -> None:
        """Start the heartbeat; the ``open`` packet counts as sent now."""
        self.heartbeat.start()

    def close(self, reason: Reason, *, farewell: bool = True, abort: bool = False) -> bool:
        """End the session; never blocks on a client. False if it had ended already.

        The client is told with a close packet, after what is queued, where
        the transport can carry one (a WebSocket; a waiting GET; the next GET
        after a server disconnect, within pingInterval + pingTimeout).
        ``farewell=False``: the transport is broken, nothing more is written.
        ``abort=True``: a transport let go of now is cut at once instead of
        closed gracefully (never waiting): with ``farewell=False``, for a
        client that stopped reading, whose writer a graceful close would
        wait on; a close packet still to deliver is delivered either way. The
        disconnect handler runs on a worker, later (dispatch.py), unless
        ``reason`` is a server disconnect or shutdown.
        """
        send = queued = False
        with self.lock:
            if self.state not in OPEN_STATES:
                return False
            channel = self.channel
            if farewell and channel.carries_close(reason):
                self.outbox.append(CLOSE)
                self._step(Event.CLOSE)
                send = channel.queued()
                queued = True
            else:
                self._step(Event.ABORT)
            self.closing_deadline = (self.backend.monotonic() + self.options.ping_interval
                                     + self.options.ping_timeout)
            finished = self.state is State.CLOSED
        logger.info('%s closed: %s', self.sid, reason)
        if queued and self.options.trace:
            trace.sending(self.sid, channel.name, CLOSE)
        channel.wake()
        self.heartbeat.wake()
        self.dispatcher.closed(reason)
        if finished:
            self._end(Event.RELEASE, abort=abort)
        elif send:
            # the caller must not wait on a slow client: the transport writes elsewhere
            channel.send()
        return True

    def close_after_dispatch(self, reason: Reason) -> None:
        """End the session once the messages received so far were handled.

        From now on the session takes no new request (``admits``) and
        nothing more from the client reaches the application. A GET already
        waiting, or the WebSocket, gets what the application sends while
        handling those messages, then the close packet; a polling client
        with no GET waiting gets nothing more (PROTOCOL.md: after a parse
        error the session is gone at once).
        """
        with self.lock:
            if self.state is not State.OPEN:
                return
            self._step(Event.STOP_INPUT)
            # the dispatch worker closes the session when it gets there
            later = self.dispatcher.close_later(reason)
        if not later:
            self.close(reason)

    def end(self) -> None:
        """Drop the session now, whatever its state: nothing more is sent,
        and nothing waits for the client."""
        self.close(Reason.SERVER_SHUTDOWN, farewell=False, abort=True)
        self._end(Event.RELEASE, abort=True)

    def release(self, abort: bool = False) -> None:
        """Let go of everything now; the transport is closed gracefully,
        or with ``abort=True`` cut at once."""
        self._end(Event.RELEASE, abort=abort)

    def grace_expired(self) -> None:
        """The close packet was not fetched in time."""
        self._end(Event.GRACE_EXPIRED, abort=True)

    def _end(self, event: Event, abort: bool = False) -> None:
        """Move to ``FINISHED`` and release everything, once.

        ``abort=True`` cuts the transport at once instead of closing it
        gracefully: for a client that does not read, where a graceful close
        would wait on the writer stuck on it.
        """
        with self.lock:
            if self.state is State.FINISHED:
                return
            self._step(event)
            self.outbox.clear()
            channel = self.channel
        channel.wake()
        self.heartbeat.wake()
        try:
            channel.abort() if abort else channel.close()
        except Exception:
            logger.debug('%s error while closing the transport', self.sid, exc_info=True)
        self._on_finished(self)

    # -- what transports report -------------------------------------------------

    def delivered(self) -> None:
        """The transport delivered the close packet: the session is over."""
        self._end(Event.DELIVERED)

    def transport_closed(self, reason: Reason) -> None:
        """The client or the connection ended the transport."""
        self.close(reason, farewell=False)

    def transport_failed(self, error: Exception) -> None:
        """A write failed: nothing more can reach the client."""
        logger.debug('%s write failed: %r', self.sid, error)
        # the writer may find the client's close before the reader reports it
        reason = (Reason.TRANSPORT_CLOSE if isinstance(error, TransportClosed)
                  else Reason.TRANSPORT_ERROR)
        self.close(reason, farewell=False, abort=True)
        self._end(Event.RELEASE, abort=True)   # when it had ended already

    def bad_input(self, error: Exception) -> None:
        """The client sent what the protocol does not allow: the session ends
        after the messages before it were handled."""
        self.close_after_dispatch(reason_for(error))

    def switch(self, channel: Transport) -> bool:
        """Carry on over ``channel`` (an upgrade, or a WebSocket-only session's
        connection once ready); False, and ``channel`` closed, when the
        session ended meanwhile."""
        with self.lock:
            if self.state in ENDED_STATES:
                ok = False
            else:
                ok = True
                old, self.channel = self.channel, channel
                opening = (self.outbox.popleft()
                           if self.outbox and self.outbox[0].type is PacketType.OPEN else None)
        if not ok:
            channel.close()
            return False
        old.wake()    # a GET still waiting on polling answers noop
        channel.attached(opening)
        return True

    # -- outgoing ---------------------------------------------------------------

    def enqueue(self, packet: Packet) -> bool:
        """Queue a packet for the client; False when the session has ended."""
        with self.lock:
            state = self.state
            # not ``in OPEN_STATES``: an Enum's hash is Python code, and this is a hot path
            if state is not _OPEN and state is not _DRAINING:
                return False
            overflow = len(self.outbox) >= self.options.max_queued_packets
            if not overflow:
                self.outbox.append(packet)
                channel = self.channel
                send = channel.queued()
        if overflow:
            # the client does not keep up: it will not read a close packet
            # either; the disconnect handler runs on a worker, not inside send()
            self.close(Reason.SEND_BUFFER_FULL, farewell=False, abort=True)
            return False
        if self.options.trace:
            trace.sending(self.sid, channel.name, packet)
        if send:
            channel.send()
        return True

    def take(self, limit: int | None = None) -> tuple[list[Packet], bool]:
        """Take up to ``limit`` queued packets (all when None) for the transport
        to write; and whether they end with the close packet's delivery.
        Caller holds the lock."""
        assert not locks.CHECK or locks.held(self.lock)
        outbox = self.outbox
        if limit is None or limit >= len(outbox):
            packets = list(outbox)
            outbox.clear()
        else:
            packets = outbox[:limit]
            del outbox[:limit]
        return packets, self.state is State.CLOSING and not outbox

    def check_text(self, data: str) -> None:
        """The polling payload cannot carry a record separator inside text."""
        if '\x1e' in data and self.channel.name == 'polling':
            raise ValueError('text sent over long-polling cannot contain "\\x1e"')

    # -- incoming ---------------------------------------------------------------

    def receive(self, packet: Packet) -> None:
        """Handle one packet from the client (POST or WebSocket)."""
        if self.options.trace:
            trace.received(self.sid, self.channel.name, packet)
        kind = packet.type
        if kind is PacketType.MESSAGE:
            self.dispatcher.message(packet.data)  # type: ignore[arg-type]
        elif kind is PacketType.PONG:
            self.heartbeat.pong()
        elif kind is PacketType.CLOSE:
            # the client is leaving: nothing more is sent to it (a waiting GET gets noop)
            self.close(Reason.CLIENT_DISCONNECT, farewell=False)
        elif kind is PacketType.UPGRADE or kind is PacketType.NOOP:
            pass
        else:
            raise ProtocolViolation(f'unexpected {kind.name} packet from the client')
