"""The heartbeat: pings, the ping timeout, the grace time of a closing
session, and the deadline of a POST body still being read.

It is the session's one long-lived thread (greenlet under gevent) and the
only thing that watches for timeouts. It runs on absolute monotonic
deadlines anchored when ``open`` is sent. ``Heartbeat`` is the pure part
(when to ping, when the peer is late), so that a fake clock can drive it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from . import locks
from .lifecycle import State
from .packets import Packet, PacketType
from .reasons import Reason
from .transport import Host

logger = logging.getLogger(__name__)

PING = Packet(PacketType.PING)


class Due(enum.Enum):
    PING = 'ping'         # a ping must go out now
    TIMEOUT = 'timeout'   # the pong is late


class _Action(enum.Enum):
    WAIT = 'wait'
    PING = 'ping'
    TIMEOUT = 'timeout'
    GRACE_EXPIRED = 'grace expired'


_ACTION_FOR = {None: _Action.WAIT, Due.PING: _Action.PING, Due.TIMEOUT: _Action.TIMEOUT}


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

    def due(self, now: float) -> Due | None:
        """What is due now, if anything."""
        if now < self.deadline:
            return None
        if self.awaiting_pong:
            return Due.TIMEOUT
        self.awaiting_pong = True
        # anchored to when the ping was due, not to when this thread woke up
        self.deadline += self.timeout
        return Due.PING


class HeartbeatTask:
    """Runs one session's heartbeat. Its fields are guarded by the session's lock."""

    def __init__(self, session: Host) -> None:
        self._session = session
        self._lock = session.lock
        self._wake = session.backend.event()
        self._beat: Heartbeat | None = None
        self._body_abort: Callable[[], None] | None = None
        self._body_deadline = 0.0
        #: when the loop looks next (what ``step`` last returned); None: now, or never again
        self._next_look: float | None = None

    def start(self) -> None:
        """Start beating; the ``open`` packet counts as sent now."""
        session = self._session
        opts = session.options
        self._beat = Heartbeat(session.backend.monotonic(), opts.ping_interval,
                               opts.ping_timeout + opts.ping_grace)
        session.backend.spawn(self._loop)

    def wake(self) -> None:
        """Deadlines changed: look again now."""
        self._wake.set()

    def pong(self) -> None:
        with self._lock:
            if self._beat is None or not self._beat.pong(self._session.backend.monotonic()):
                return
        self._wake.set()

    def watch_body(self, abort: Callable[[], None], deadline: float) -> bool:
        """Call ``abort`` at ``deadline`` unless ``unwatch_body`` came first.

        Returns True when the caller must ``wake()`` the heartbeat (after
        releasing the lock): only when it would otherwise look later than
        ``deadline``. A POST thus costs no wake-up while a ping or a timeout
        is due first. Caller holds the session's lock.
        """
        assert not locks.CHECK or locks.held(self._lock)
        self._body_abort = abort
        self._body_deadline = deadline
        return self._next_look is None or deadline < self._next_look

    def unwatch_body(self) -> bool:
        """Stop watching the body. Returns True when the caller must ``wake()``
        the heartbeat: it was to look next for the body only (a heartbeat kept
        only for that body can then end at once). Caller holds the lock."""
        assert not locks.CHECK or locks.held(self._lock)
        if self._body_abort is None:
            return False
        self._body_abort = None
        return self._next_look is None or self._next_look >= self._body_deadline

    def step(self) -> float | None:
        """Do what is due now; return the next deadline, or None when done.

        A POST still reading its body is watched until it ends, also after
        the session ended: its thread must be released either way.
        """
        now = self._session.backend.monotonic()
        with self._lock:
            abort = None
            if self._body_abort is not None and now >= self._body_deadline:
                abort, self._body_abort = self._body_abort, None
        if abort is not None:
            logger.debug('%s POST body too slow; dropping it', self._session.sid)
            abort()
        deadline = self._next_deadline(now)
        with self._lock:
            # recorded under the lock that watch_body takes: a body watched
            # after this knows whether the loop would look in time
            if self._body_abort is not None:
                deadline = (self._body_deadline if deadline is None
                            else min(deadline, self._body_deadline))
            self._next_look = deadline
            return deadline

    def _next_deadline(self, now: float) -> float | None:
        session = self._session
        with self._lock:
            state = session.state
            if state is State.CLOSED or state is State.FINISHED:
                return None
            if state is State.CLOSING:
                if now < session.closing_deadline:
                    return session.closing_deadline
                action = _Action.GRACE_EXPIRED
            else:
                assert self._beat is not None
                action = _ACTION_FOR[self._beat.due(now)]
                deadline = self._beat.deadline
                # a write still under way: the client reads nothing
                stuck = session.channel.writing()
        if action is _Action.PING:
            session.enqueue(PING)
            return deadline
        if action is _Action.TIMEOUT:
            if stuck:
                # No close packet can reach a client that stopped reading, and
                # the stuck write holds a worker (a pool thread in threading
                # mode): cut the connection now instead of lingering.
                session.close(Reason.PING_TIMEOUT, farewell=False, abort=True)
            else:
                session.close(Reason.PING_TIMEOUT)
            return session.backend.monotonic()  # come back to see if it lingers
        if action is _Action.GRACE_EXPIRED:
            logger.debug('%s close packet was not fetched in time', session.sid)
            session.grace_expired()
            return None
        return deadline

    def _loop(self) -> None:
        monotonic = self._session.backend.monotonic
        wake = self._wake
        try:
            while True:
                wake.clear()
                deadline = self.step()
                if deadline is None:
                    return
                delay = deadline - monotonic()
                if delay > 0:
                    wake.wait(delay)
        except Exception:
            logger.exception('%s heartbeat failed', self._session.sid)
            self._session.close(Reason.TRANSPORT_ERROR, farewell=False)
            self._session.release()
