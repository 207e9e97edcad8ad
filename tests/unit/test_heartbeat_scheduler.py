"""The heartbeats of all sessions share one carrier (heartbeat.Scheduler), on
the real threading backend and clock: each session keeps its own schedule,
timeouts start no thread of their own, and a session whose disconnect handler
is stuck delays no other's pings."""

from __future__ import annotations

import threading
import time

from engineio_wsgi.backends import ThreadingBackend
from engineio_wsgi.options import Options
from engineio_wsgi.packets import PacketType
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.reasons import Reason
from engineio_wsgi.session import Session, State
from tests.live import wait_until

from .fakes import FakeBackend

#: how late a ping may go out behind its deadline here (a busy 2-core machine)
LATE = 0.5


def make(backend: ThreadingBackend, sid: str, closed: list[tuple[str, str]],
         gate: threading.Event | None = None, **options: float) -> Session:
    """A started polling session; its disconnect handler records the end,
    after waiting for ``gate`` when one is given."""
    def on_close(session: Session, reason: str) -> None:
        if gate is not None:
            gate.wait(30)
        closed.append((session.sid, reason))
    session = Session(sid, PollingTransport, backend, Options.from_kwargs(**options),
                      on_message=lambda *a: None, on_close=on_close,
                      on_finished=lambda *a: None)
    session.set_open_packet('{}')
    session.start()
    return session


def started_on_fake_clock(**options: float) -> tuple[Session, FakeBackend]:
    """A started polling session whose heartbeat runs on a fake clock."""
    backend = FakeBackend()
    session = Session('sid1', PollingTransport, backend, Options.from_kwargs(**options),
                      on_message=lambda *a: None, on_close=lambda *a: None,
                      on_finished=lambda *a: None)
    session.set_open_packet('{}')
    session.start()
    return session, backend


def started_since(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not in ``before`` (other tests' threads
    still ending do not count)."""
    return [t for t in threading.enumerate() if t not in before]


def take_ping(session: Session, timeout: float, message: str = 'a ping') -> float:
    """Wait for a ping in the session's queue; take the queue; when it came.
    AssertionError (saying ``message``) when none came within ``timeout``."""
    found: list[float] = []

    def ping_queued() -> bool:
        with session.lock:
            if any(p.type is PacketType.PING for p in session.outbox):
                session.outbox.clear()
                found.append(time.monotonic())
                return True
        return False

    wait_until(ping_queued, timeout=timeout, interval=0.005, message=message)
    return found[0]


def test_each_session_pings_on_its_own_schedule() -> None:
    backend = ThreadingBackend()
    closed: list[tuple[str, str]] = []
    opened = time.monotonic()
    fast = make(backend, 'fast', closed, ping_interval=0.1, ping_timeout=5)
    slow = make(backend, 'slow', closed, ping_interval=0.6, ping_timeout=5)
    first_fast = take_ping(fast, timeout=5)
    first_slow = take_ping(slow, timeout=5)
    assert 0.1 <= first_fast - opened < 0.1 + LATE
    assert 0.6 <= first_slow - opened < 0.6 + LATE
    fast.end()
    slow.end()


def test_a_session_whose_disconnect_handler_is_stuck_delays_no_other_ping() -> None:
    backend = ThreadingBackend()
    closed: list[tuple[str, str]] = []
    gate = threading.Event()
    # never answers: times out after 0.1 s, and its disconnect handler then waits
    stuck = make(backend, 'stuck', closed, gate, ping_interval=0.05, ping_timeout=0.05)
    alive = make(backend, 'alive', [], ping_interval=0.1, ping_timeout=5)
    wait_until(lambda: stuck.state is State.FINISHED, timeout=5, message='the timeout')
    last = time.monotonic()
    for _ in range(5):
        alive.heartbeat.pong()
        last = time.monotonic()
        came = take_ping(alive, timeout=5, message='a ping while a disconnect handler waits')
        assert came - last < 0.1 + LATE
    assert closed == []                             # the handler waited all along
    assert alive.state is State.OPEN
    gate.set()
    assert wait_until(lambda: closed, timeout=5) == [('stuck', Reason.PING_TIMEOUT)]
    alive.end()


class _CountingSpawns(ThreadingBackend):
    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self.spawned: list[str] = []

    def spawn(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.spawned.append(fn.__name__)
        return super().spawn(fn, *args, **kwargs)


def test_a_wave_of_ping_timeouts_starts_no_thread_per_session() -> None:
    workers = 4
    backend = _CountingSpawns(max_workers=workers)
    closed: list[tuple[str, str]] = []
    gate = threading.Event()
    before = set(threading.enumerate())
    # none answers: all time out together, and their disconnect handlers wait
    sessions = [make(backend, f's{i}', closed, gate, ping_interval=0.1, ping_timeout=0.1)
                for i in range(200)]
    try:
        wait_until(lambda: all(s.state is State.FINISHED for s in sessions), timeout=10,
                   message='every session timed out')
        # the carrier, and the pool's workers in the handlers: nothing per session
        assert len(started_since(before)) <= 1 + workers
        assert backend.spawned == ['_carry']
    finally:
        gate.set()
    wait_until(lambda: len(closed) == len(sessions), timeout=10, message='every end reported')
    assert sorted(closed) == sorted((s.sid, Reason.PING_TIMEOUT) for s in sessions)


def test_an_ended_session_leaves_the_schedule_without_a_look() -> None:
    session, backend = started_on_fake_clock(ping_interval=1.0)
    assert session.heartbeat.next_look == backend.clock.now + 1.0
    session.close(Reason.CLIENT_DISCONNECT)
    assert session.state is State.FINISHED
    assert session.heartbeat.next_look is None        # nothing left to look at
    assert session.heartbeat.step() is None


def test_an_ended_session_still_watching_a_post_body_stays_scheduled() -> None:
    session, backend = started_on_fake_clock(ping_interval=25.0, http_body_timeout=2.0)
    aborted: list[bool] = []
    session.polling.begin_post(lambda: aborted.append(True))
    session.close(Reason.TRANSPORT_ERROR)
    assert session.heartbeat.next_look == backend.clock.now       # looks again now
    assert session.heartbeat.step() == backend.clock.now + 2.0     # for the body
    backend.clock.advance(2.0)
    assert session.heartbeat.step() is None
    assert aborted == [True]


def test_sessions_park_no_thread_of_their_own() -> None:
    backend = ThreadingBackend()
    closed: list[tuple[str, str]] = []
    before = set(threading.enumerate())
    sessions = [make(backend, f's{i}', closed, ping_interval=0.2, ping_timeout=5)
                for i in range(200)]
    # every one of them pings on time, carried by one thread for all
    for session in sessions:
        take_ping(session, timeout=5, message=f'a ping of {session.sid}')
    assert len(started_since(before)) <= 1
    for session in sessions:
        session.end()
    assert wait_until(lambda: not started_since(before), timeout=5)


def test_the_carrier_ends_with_the_last_session_not_at_its_next_deadline() -> None:
    backend = ThreadingBackend()
    closed: list[tuple[str, str]] = []
    before = set(threading.enumerate())
    sessions = [make(backend, f's{i}', closed, ping_interval=25, ping_timeout=20)
                for i in range(3)]
    [carrier] = started_since(before)      # sleeping towards 25 s
    for session in sessions:
        session.end()
    assert wait_until(lambda: not carrier.is_alive(), timeout=2)


class _FirstWorkerFails(ThreadingBackend):
    """A backend whose pool cannot start its first worker (as when the
    process is out of threads), and starts everything else."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = threading.Event()
        start = self._pool._start_worker

        def start_worker(work):  # type: ignore[no-untyped-def]
            if not self.refused.is_set():
                self.refused.set()
                raise RuntimeError("can't start new thread")
            start(work)
        self._pool._start_worker = start_worker


def test_an_end_whose_worker_cannot_start_stops_no_ping_and_is_reported_by_the_next() -> None:
    backend = _FirstWorkerFails()
    closed: list[tuple[str, str]] = []
    late = make(backend, 'late', closed, ping_interval=0.05, ping_timeout=0.05)
    alive = make(backend, 'alive', closed, ping_interval=0.1, ping_timeout=5)
    assert backend.refused.wait(5)       # the timeout's report found no worker
    wait_until(lambda: late.state is State.FINISHED, timeout=5, message='the session ended')
    for _ in range(3):
        alive.heartbeat.pong()
        take_ping(alive, timeout=5, message='a ping after a worker failed to start')
    assert closed == []
    alive.close(Reason.TRANSPORT_CLOSE, farewell=False)   # the next worker reports both
    wait_until(lambda: len(closed) == 2, timeout=5, message='both ends reported')
    assert closed == [('late', Reason.PING_TIMEOUT), ('alive', Reason.TRANSPORT_CLOSE)]


def test_a_pong_after_the_end_does_not_put_the_session_back_on_the_schedule() -> None:
    session, backend = started_on_fake_clock(ping_interval=1.0)
    backend.clock.advance(1.0)
    assert session.heartbeat.step() is not None     # the ping went out
    session.end()
    assert session.heartbeat.next_look is None
    session.heartbeat.pong()                          # read after the end
    assert session.heartbeat.next_look is None
