"""The heartbeat: pings, the ping timeout, the grace time of a closing
session, and the deadline of a POST body still being read.

Each session has its own heartbeat (``HeartbeatTask``): its own absolute
monotonic deadlines, anchored when ``open`` is sent, its own pings and its
own timeouts; it is the only thing that watches for timeouts.
``Heartbeat`` is the pure part (when to ping, when the peer is late), so that
a fake clock can drive it.

The heartbeats of a backend's sessions share one carrier, the ``Scheduler``:
one thread (greenlet under gevent), started when the first heartbeat needs it
and ended when none is scheduled, that runs each heartbeat at its own next
deadline and does what is due itself: queuing a ping, closing on a ping
timeout, cutting a slow POST body, ending a closing session whose grace time
passed. No task is started for any of it, so a wave of timeouts costs no
thread or greenlet per session, and a handshake starts none.

None of that waits: the session's lock is held for a few lines by holders
that never block; a ping goes to the transport, which writes it with a send
that never waits or hands it to its writer task; a close runs no application
code (the disconnect handler runs on the backend's pool, dispatch.py), writes
nothing itself and cuts a connection without waiting (``Transport.abort``;
the close packet of a graceful close is written by the transport's writer
task). Nor does it wait for the pool: the ping timeout is what frees a pool
worker stuck writing to a client that stopped reading, and a session must
time out while slow application code holds every worker. The others' pings
go out at their deadlines plus the time the carrier takes for one round of
due work.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from . import locks, trace
from .backends import Backend
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

    def late(self, now: float) -> bool:
        """The peer is past its pong's deadline, whether or not the ping went
        out on time (a late carrier): nothing changes."""
        return now >= self.deadline + (0.0 if self.awaiting_pong else self.timeout)

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


class Scheduler:
    """Runs the heartbeats of one backend's sessions, each at its own deadline.

    A heap of (deadline, sequence, heartbeat) entries, one entry per scheduled
    heartbeat (its earliest look); a heartbeat rescheduled earlier leaves its
    old entry behind, emptied, and compacts away with the others.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._monotonic = backend.monotonic
        # held for a few lines that never block: a real lock is fine under gevent too
        self._lock = threading.Lock()
        self._heap: list[list[Any]] = []
        self._stale = 0
        self._sequence = itertools.count()
        self._wakeup = backend.event()
        self._running = False

    def schedule(self, task: HeartbeatTask, when: float) -> None:
        """Run ``task`` at ``when``, unless it is to run earlier already."""
        with self._lock:
            entry = task._entry
            if entry is not None:
                if entry[0] <= when:
                    return
                entry[2] = None     # superseded: dropped when it reaches the top
                self._stale += 1
            entry = [when, next(self._sequence), task]
            task._entry = entry
            heapq.heappush(self._heap, entry)
            if self._stale > 1024 and self._stale * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._stale = 0
            start = not self._running
            self._running = True
            first = self._heap[0] is entry
        if start:
            try:
                self._backend.spawn(self._carry)
            except BaseException:
                with self._lock:
                    self._running = False   # the next schedule tries again
                raise
        elif first:
            self._wakeup.set()

    def cancel(self, task: HeartbeatTask) -> None:
        """Run ``task`` no more (until scheduled again). The carrier is woken
        only when no heartbeat is left, so that it ends now instead of at the
        deadline it sleeps towards."""
        with self._lock:
            entry = task._entry
            if entry is None:
                return
            entry[2] = None
            self._stale += 1
            task._entry = None
            idle = self._running and self._stale >= len(self._heap)
        if idle:
            self._wakeup.set()

    def scheduled_at(self, task: HeartbeatTask) -> float | None:
        with self._lock:
            entry = task._entry
            return None if entry is None else entry[0]

    def _carry(self) -> None:
        while True:
            due: list[HeartbeatTask] = []
            with self._lock:
                heap = self._heap
                now = self._monotonic()
                while heap and (heap[0][2] is None or heap[0][0] <= now):
                    entry = heapq.heappop(heap)
                    task = entry[2]
                    if task is None:
                        self._stale -= 1
                        continue
                    task._entry = None
                    due.append(task)
                if not due:
                    if not heap:
                        self._running = False
                        return
                    delay = heap[0][0] - now
                    self._wakeup.clear()
            if due:
                for task in due:
                    try:
                        task._fire()
                    except Exception:   # one session's fault must not stop the others' pings
                        logger.exception('%s heartbeat failed', task._session.sid)
                del due, task
                continue
            self._wakeup.wait(delay)


_schedulers_lock = threading.Lock()


def scheduler_for(backend: Backend) -> Scheduler:
    """The one heartbeat scheduler of ``backend``."""
    scheduler: Scheduler | None = getattr(backend, '_heartbeat_scheduler', None)
    if scheduler is None:
        with _schedulers_lock:
            scheduler = getattr(backend, '_heartbeat_scheduler', None)
            if scheduler is None:
                scheduler = Scheduler(backend)
                backend._heartbeat_scheduler = scheduler  # type: ignore[attr-defined]
    return scheduler


class HeartbeatTask:
    """One session's heartbeat. Its fields are guarded by the session's lock;
    ``_entry`` by its scheduler's lock."""

    __slots__ = ('_session', '_lock', '_scheduler', '_beat', '_body_abort', '_body_deadline',
                 '_next_look', '_entry')

    def __init__(self, session: Host) -> None:
        self._session = session
        self._lock = session.lock
        self._scheduler = scheduler_for(session.backend)
        self._beat: Heartbeat | None = None
        self._body_abort: Callable[[], None] | None = None
        self._body_deadline = 0.0
        #: when it looks next (what ``step`` last returned); None: now, or never again
        self._next_look: float | None = None
        self._entry: list[Any] | None = None

    def start(self) -> None:
        """Start beating; the ``open`` packet counts as sent now."""
        session = self._session
        opts = session.options
        now = session.backend.monotonic()
        self._beat = Heartbeat(now, opts.ping_interval, opts.ping_timeout + opts.ping_grace)
        self._next_look = self._beat.deadline
        self._scheduler.schedule(self, self._beat.deadline)

    @property
    def next_look(self) -> float | None:
        """When the heartbeat runs next; None when it is not scheduled."""
        return self._scheduler.scheduled_at(self)

    def wake(self) -> None:
        """Deadlines changed: look again now.

        A session that ended, with no POST body left to watch, has nothing
        more for its heartbeat: it is taken off the schedule instead, without
        waking the carrier (a handshake closed at once costs it nothing).
        """
        session = self._session
        with self._lock:
            state = session.state
            done = ((state is State.CLOSED or state is State.FINISHED)
                    and self._body_abort is None)
            if done:
                self._next_look = None
        if done:
            self._scheduler.cancel(self)
        else:
            self._scheduler.schedule(self, session.backend.monotonic())

    def late(self) -> bool:
        """The client is past its pong's deadline (PROTOCOL.md: the session
        ends at that deadline, not later), though this heartbeat may not
        have looked yet (a busy carrier)."""
        with self._lock:
            beat = self._beat
            return beat is not None and beat.late(self._session.backend.monotonic())

    def pong(self) -> None:
        with self._lock:
            beat = self._beat
            state = self._session.state
            if (beat is None or state is State.CLOSED or state is State.FINISHED
                    or not beat.pong(self._session.backend.monotonic())):
                return   # (an ended session is off the schedule for good)
            deadline = beat.deadline
        # no look now: only make sure it looks by the next ping
        self._scheduler.schedule(self, deadline)

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
        the session ended: its thread must be released either way. Never
        waits (see the module's docstring).
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
            # after this knows whether the heartbeat would look in time
            if self._body_abort is not None:
                deadline = (self._body_deadline if deadline is None
                            else min(deadline, self._body_deadline))
            self._next_look = deadline
            return deadline

    def _next_deadline(self, now: float) -> float | None:
        session = self._session
        full = send = False
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
                channel = session.channel
                # a write still under way: the client reads nothing
                stuck = channel.writing()
                if action is _Action.PING:
                    # queued in the hold that saw room for it (``Session.enqueue``'s rule)
                    full = len(session.outbox) >= session.options.max_queued_packets
                    if not full:
                        session.outbox.append(PING)
                        send = channel.queued()
        if action is _Action.PING:
            if full:
                # the client does not keep up: it will not read a close packet either
                session.close(Reason.SEND_BUFFER_FULL, farewell=False, abort=True)
                return deadline
            if session.options.trace:
                trace.sending(session.sid, channel.name, PING)
            if send:
                channel.send()
            return deadline
        if action is _Action.TIMEOUT:
            if stuck:
                # No close packet can reach a client that stopped reading, and
                # the stuck write holds a worker (a pool thread in threading
                # mode): cut the connection now instead of lingering.
                session.close(Reason.PING_TIMEOUT, farewell=False, abort=True)
            else:
                # (abort: a transport let go of now is cut, never waited on)
                session.close(Reason.PING_TIMEOUT, abort=True)
            return session.backend.monotonic()  # come back to see if it lingers
        if action is _Action.GRACE_EXPIRED:
            logger.debug('%s close packet was not fetched in time', session.sid)
            session.grace_expired()
            return None
        return deadline

    # -- run by the scheduler -------------------------------------------------------

    def _fire(self) -> None:
        """Its deadline came: do what is due, on the scheduler's carrier."""
        try:
            deadline = self.step()
        except Exception:
            session = self._session
            logger.exception('%s heartbeat failed', session.sid)
            # ended without waiting on anything: the carrier must go on
            session.close(Reason.TRANSPORT_ERROR, farewell=False, abort=True)
            session.release(abort=True)
            return
        if deadline is not None:
            self._scheduler.schedule(self, deadline)
