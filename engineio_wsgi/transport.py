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
from .output import Move, Output, step
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
    """A transport that takes the session's queue in batches, holding the
    writer's turn (output.py) while it does: never two writers at once.

    ``queued`` (under the session's lock) says whether the caller took the
    turn; ``send`` then writes, or starts what writes. No turn is taken
    before ``attached``. ``_flush`` is a writer that may wait (the batches
    of ``_write``, which raises when a batch cannot be delivered): only for
    a transport whose writes never wait on a client, on a task of its own.
    """

    name = 'websocket'
    __slots__ = ('_session', '_lock', 'output')

    def __init__(self, session: Any) -> None:
        self._session = session
        self._lock = session.lock
        #: held by nobody yet: ``attached`` starts the first turn
        self.output = Output.WRITING

    def queued(self) -> bool:
        """Under the session's lock (as every method so marked in ``Transport``)."""
        assert not locks.CHECK or locks.held(self._lock)
        before = self.output
        self.output = step(before, Move.START)
        return before is Output.IDLE

    def send(self) -> None:
        self._session.backend.run_soon(self._flush)

    def writing(self) -> bool:
        assert not locks.CHECK or locks.held(self._lock)
        return self.output is Output.WRITING

    def _take(self) -> tuple[list[Packet], bool] | None:
        """For the holder of the turn, under the lock: the next batch and
        whether it ends with the close packet; None when there is nothing
        to write (the turn is given back, or the connection is over)."""
        assert not locks.CHECK or locks.held(self._lock)
        session = self._session
        if session.state is State.FINISHED:
            self.output = step(self.output, Move.END)
            return None
        if not session.outbox:
            self.output = step(self.output, Move.DRAINED)
            return None
        batch, closes = session.take()
        if closes:
            self.output = step(self.output, Move.CLOSE)
        return batch, closes

    def _write(self, batch: list[Packet]) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        """Write the queue until it is empty, waiting on each write."""
        while True:
            with self._lock:
                item = self._take()
            if item is None:
                return
            batch, closes = item
            try:
                self._write(batch)
            except Exception as exc:
                self._failed(exc)
                return
            if closes:
                self._delivered()
                return

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self.output = step(self.output, Move.END)
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
