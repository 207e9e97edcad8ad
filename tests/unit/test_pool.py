"""The threading backend's worker pool: bounded, and it empties."""

from __future__ import annotations

import threading
import time

from engineio_wsgi.backends import ThreadingBackend


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'condition not met in time'
        time.sleep(0.005)


def test_no_more_workers_than_the_cap_and_every_task_runs():
    backend = ThreadingBackend(max_workers=3)
    release = threading.Event()
    running = []
    done = []
    lock = threading.Lock()
    peak = [0]

    threads = set()

    def task(i):
        with lock:
            threads.add(threading.current_thread())
            running.append(i)
            peak[0] = max(peak[0], len(running))
        release.wait(10)
        with lock:
            running.remove(i)
            done.append(i)

    for i in range(20):
        backend.run_soon(task, i)
    wait_for(lambda: len(running) == 3)
    # three threads of this pool's own (other pools' workers come and go)
    assert len(threads) == 3
    assert all(t.name == 'engineio_wsgi-worker' for t in threads)
    release.set()
    wait_for(lambda: len(done) == 20)
    assert peak[0] == 3
    assert sorted(done) == list(range(20))


def test_idle_workers_leave_and_the_pool_grows_again():
    backend = ThreadingBackend(max_workers=2)
    backend._pool.idle_timeout = 0.05
    # this pool's own worker threads, seen from the tasks they run (the
    # workers of other pools in the process come and go on their own)
    ran_on: list[threading.Thread] = []
    ran = threading.Event()

    def first() -> None:
        ran_on.append(threading.current_thread())
        ran.set()
    backend.run_soon(first)
    assert ran.wait(5)
    wait_for(lambda: not ran_on[0].is_alive())
    again = []
    for i in range(5):
        backend.run_soon(again.append, i)
    wait_for(lambda: len(again) == 5)
