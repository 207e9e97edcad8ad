"""What a session and the transport carrying it tell each other.

A session is protocol state: its life cycle, its outgoing queue, its
heartbeat and its dispatcher. A transport is how bytes move between it and
the client: long-polling requests (polling_transport.py), a WebSocket (websocket_transport.py),
and, for a session served by this process whose client is connected to
another one, a transport that would publish the packets to that process
and feed the packets it relays back in. The session holds one transport at a
time and swaps it on upgrade.

The session calls a transport through ``Transport``. Methods marked "under
the lock" run with the session's lock held and must not block; the others
run without it. A transport reports back through ``Session.receive``
(a packet from the client), ``Session.delivered`` (the close packet went
out), ``Session.transport_closed`` (the client or the connection ended it),
``Session.transport_failed`` (a write failed) and ``Session.bad_input``
(a packet the protocol does not allow).

Outgoing packets stay in the session's queue until the transport takes them
(``Session.take``): what was queued before an upgrade goes out on the new
transport, in order.
"""

from __future__ import annotations

from typing import Any, Protocol

from . import locks
from .backends import Backend
from .lifecycle import State
from .options import Options
from .packets import DecodeError, Packet
from .reasons import LINGERING_REASONS, Reason


class Transport(Protocol):
    #: 'polling' or 'websocket': what ``Server.transport(sid)`` answers
    name: str

    def queued(self) -> bool:
        """Under the lock: packets were added to the queue. True when
        ``send`` must follow once the lock is released."""

    def send(self) -> None:
        """Deliver the queue; never blocks the caller on the client."""

    def carries_close(self, reason: Reason) -> bool:
        """Under the lock: whether a close packet queued now can still reach
        the client."""

    def writing(self) -> bool:
        """Under the lock: a write to the client is under way (one that a
        client that stopped reading keeps from ending)."""

    def attached(self, opening: Packet | None) -> None:
        """The session carries on over this transport from now on (after an
        upgrade, or when a WebSocket-only session's connection is ready);
        ``opening`` is the open packet when it was not sent yet."""

    def wake(self) -> None:
        """The session's state changed: whatever waits on it looks again."""

    def close(self) -> None:
        """The session is over: close gracefully (may wait a bounded time)."""

    def abort(self) -> None:
        """The session is over: cut the connection now; never blocks."""


class Upgradable(Transport, Protocol):
    """A transport a WebSocket can take over from (long-polling)."""

    #: a WebSocket probe succeeded: the switch is under way
    paused: bool

    def reserve_probe(self) -> bool:
        """Claim the upgrade for one WebSocket; False if one has it."""

    def pause(self) -> None:
        """The probe succeeded: stop delivering until the switch or its failure."""

    def resume(self) -> None:
        """The probe failed: carry on."""


class Host(Protocol):
    """What the parts of a session (heartbeat, dispatcher) see of it."""

    sid: str
    backend: Backend
    options: Options
    state: State
    lock: Any
    closing_deadline: float
    channel: Transport
    outbox: Any

    def enqueue(self, packet: Packet) -> bool: ...

    def close(self, reason: Reason, *, farewell: bool = True, abort: bool = False) -> bool: ...

    def grace_expired(self) -> None: ...

    def release(self, abort: bool = False) -> None: ...


class Unconnected:
    """The transport of a WebSocket-only session until its handshake completes:
    packets wait in the queue, and nothing can carry a close packet unless
    the client is owed one (then the connection delivers it once ready)."""

    name = 'websocket'

    def queued(self) -> bool:
        return False

    def send(self) -> None:
        pass

    def carries_close(self, reason: Reason) -> bool:
        return reason in LINGERING_REASONS

    def writing(self) -> bool:
        return False

    def attached(self, opening: Packet | None) -> None:
        pass

    def wake(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class QueueWriter:
    """A transport whose one writer task drains the session's queue.

    ``send`` starts the task (never on the caller's thread: a client that
    stops reading must not block whoever sends to it); ``_flushing``, under
    the session's lock, is True while a task runs or is about to, so there is
    never a second one. Subclasses give ``_write(batch)``, which raises when
    the batch cannot be delivered; no task runs before ``attached``.
    """

    name = 'websocket'
    __slots__ = ('_session', '_lock', '_flushing')

    def __init__(self, session: Any) -> None:
        self._session = session
        self._lock = session.lock
        self._flushing = True

    def queued(self) -> bool:
        """Under the session's lock (as every method so marked in ``Transport``)."""
        assert not locks.CHECK or locks.held(self._lock)
        if self._flushing:
            return False
        self._flushing = True
        return True

    def send(self) -> None:
        self._session.backend.run_soon(self._flush)

    def writing(self) -> bool:
        assert not locks.CHECK or locks.held(self._lock)
        return self._flushing

    def _write(self, batch: list[Packet]) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        """Write the queue until it is empty; one writer at a time."""
        session = self._session
        outbox = session.outbox
        while True:
            with self._lock:
                if not outbox or session.state is State.FINISHED:
                    self._flushing = False
                    done = session.state is State.CLOSING
                    break
                batch = list(outbox)
                outbox.clear()
            try:
                self._write(batch)
            except Exception as exc:
                self._failed(exc)
                return
        if done:
            self._delivered()

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._flushing = False
        self._session.transport_failed(exc)

    def _delivered(self) -> None:
        self._session.delivered()


class ProtocolViolation(Exception):
    """A client packet that is not allowed where it arrived."""


class RateLimited(ProtocolViolation):
    """The client sent messages faster than ``message_rate_limit`` allows."""


class DuplicateRequest(Exception):
    """A second GET or POST while one is in progress on the same session."""


class SessionEnded(Exception):
    """A request for a session that has ended or is about to."""


class TransportClosed(ConnectionError):
    """Raised by a writer whose client closed the transport: the session then
    ends as "transport close", the reason its reader would report."""


def reason_for(error: Exception) -> Reason:
    """Why a session closes for bad client input: one answer for every transport."""
    if isinstance(error, RateLimited):
        return Reason.TRANSPORT_ERROR
    if isinstance(error, (DecodeError, ProtocolViolation)):
        return Reason.PARSE_ERROR
    return Reason.TRANSPORT_ERROR
