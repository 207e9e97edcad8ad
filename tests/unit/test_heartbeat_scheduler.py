"""The heartbeats of all sessions share one carrier (heartbeat.Scheduler), on
the real threading backend and clock: each session keeps its own schedule,
and one session whose timeout handling is stuck delays no other's pings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

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
         **options: float) -> Session:
    session = Session(sid, PollingTransport, backend, Options.from_kwargs(**options),
                      on_message=lambda *a: None,
                      on_close=lambda s, reason: closed.append((s.sid, reason)),
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


class _StuckOn(logging.Handler):
    """A log handler that blocks on one session's 'closed' line until released."""

    def __init__(self, sid: str) -> None:
        super().__init__(logging.INFO)
        self.sid = sid
        self.entered = threading.Event()
        self.unblock = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.args and record.args[0] == self.sid and 'closed' in record.msg:
            self.entered.set()
            self.unblock.wait(30)


@pytest.fixture
def stuck_handler() -> Iterator[_StuckOn]:
    handler = _StuckOn('stuck')
    logger = logging.getLogger('engineio_wsgi.session')
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        handler.unblock.set()
        logger.removeHandler(handler)
        logger.setLevel(level)


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


def test_a_session_stuck_in_its_timeout_delays_no_other_ping(stuck_handler: _StuckOn) -> None:
    backend = ThreadingBackend()
    closed: list[tuple[str, str]] = []
    # never answers: times out after 0.1 s, and its close then blocks in logging
    stuck = make(backend, 'stuck', closed, ping_interval=0.05, ping_timeout=0.05)
    alive = make(backend, 'alive', closed, ping_interval=0.1, ping_timeout=5)
    assert stuck_handler.entered.wait(5), 'the stuck session never timed out'
    last = time.monotonic()
    for _ in range(5):
        alive.heartbeat.pong()
        last = time.monotonic()
        came = take_ping(alive, timeout=5, message='a ping while another session was stuck')
        assert came - last < 0.1 + LATE
    assert not stuck_handler.unblock.is_set()      # still stuck all along
    assert stuck.state is State.CLOSED              # no GET waiting: nothing carries a close
    assert alive.state is State.OPEN
    stuck_handler.unblock.set()
    assert wait_until(lambda: ('stuck', Reason.PING_TIMEOUT) in closed, timeout=5)
    alive.end()


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


class _FirstTaskFails(ThreadingBackend):
    """A backend that cannot start the first task of a heartbeat's own (as when
    the process is out of threads), and starts everything else."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = threading.Event()

    def spawn(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if getattr(fn, '__name__', '') == '_act' and not self.refused.is_set():
            self.refused.set()
            raise RuntimeError("can't start new thread")
        return super().spawn(fn, *args, **kwargs)


def test_a_heartbeat_task_that_cannot_start_is_tried_again_and_stops_no_other_ping() -> None:
    backend = _FirstTaskFails()
    closed: list[tuple[str, str]] = []
    # never answers: its timeout's close needs a task of its own, refused once
    late = make(backend, 'late', closed, ping_interval=0.05, ping_timeout=0.05)
    alive = make(backend, 'alive', closed, ping_interval=0.1, ping_timeout=5)
    assert backend.refused.wait(5)
    for _ in range(3):
        alive.heartbeat.pong()
        take_ping(alive, timeout=5, message='a ping after a failed start')
    assert wait_until(lambda: ('late', Reason.PING_TIMEOUT) in closed, timeout=5)
    assert late.state is not State.OPEN
    alive.end()


def test_a_pong_after_the_end_does_not_put_the_session_back_on_the_schedule() -> None:
    session, backend = started_on_fake_clock(ping_interval=1.0)
    backend.clock.advance(1.0)
    assert session.heartbeat.step() is not None     # the ping went out
    session.end()
    assert session.heartbeat.next_look is None
    session.heartbeat.pong()                          # read after the end
    assert session.heartbeat.next_look is None
