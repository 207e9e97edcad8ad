"""The debug lock wrapper knows its owner under threads and greenlets."""

from __future__ import annotations

import threading

import gevent
import gevent.lock

from engineio_wsgi import locks


def test_the_test_run_checks_lock_rules():
    assert locks.CHECK   # set by tests/conftest.py for this process and its servers


def test_held_by_the_thread_that_acquired_it_only():
    lock = locks.guarded(threading.Lock())
    assert isinstance(lock, locks.OwnedLock)
    assert not locks.held(lock)
    seen = []
    with lock:
        assert locks.held(lock)
        other = threading.Thread(target=lambda: seen.append(locks.held(lock)))
        other.start()
        other.join(2)
    assert seen == [False]
    assert not locks.held(lock)


def test_held_by_the_greenlet_that_acquired_it_only():
    lock = locks.guarded(gevent.lock.Semaphore())
    seen = []

    def holder():
        with lock:
            seen.append(('holder', locks.held(lock)))
            # the scenario: yield to the other greenlet while holding the lock
            gevent.sleep(0)
            gevent.sleep(0)

    def other():
        seen.append(('other', locks.held(lock)))

    gevent.joinall([gevent.spawn(holder), gevent.spawn(other)], timeout=2)
    assert seen == [('holder', True), ('other', False)]


def test_a_plain_lock_is_not_checked():
    assert locks.held(threading.Lock())
