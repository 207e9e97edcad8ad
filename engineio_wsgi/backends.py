"""Concurrency backends: plain threads, or gevent greenlets.

The rest of the library never imports ``threading`` primitives or gevent
directly: it asks its backend for events, locks, queues, sleeping and spawning,
so one code path serves both. This is the only module that imports gevent.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class Task(Protocol):
    def join(self, timeout: float | None = None) -> Any: ...


class Event(Protocol):
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Backend:
    """What a concurrency model offers the library."""

    name = 'base'
    #: True when ``timeout()`` interrupts any blocking call (gevent)
    bounds_blocking_calls = False
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        raise NotImplementedError

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` off the caller's thread; for short-lived work."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def event(self) -> Event:
        raise NotImplementedError

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def queue(self, maxsize: int = 0) -> Any:
        raise NotImplementedError

    def timeout(self, seconds: float) -> contextlib.AbstractContextManager[Any]:
        """Bound a blocking call; raises ``TimeoutError`` where the backend can."""
        return contextlib.nullcontext()


class ThreadingBackend(Backend):
    name = 'threading'

    #: blocking calls are not bounded by ``timeout()``: watchdogs are needed
    bounds_blocking_calls = False

    def __init__(self) -> None:
        self._pool = _ElasticPool(_start_thread, queue.SimpleQueue())

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        thread = threading.Thread(target=fn, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self._pool.submit(fn, args)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def event(self) -> Event:
        return threading.Event()

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return threading.Lock()

    def queue(self, maxsize: int = 0) -> Any:
        return queue.Queue(maxsize)


def _start_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name='engineio_wsgi-worker', daemon=True).start()


class _ElasticPool:
    """Workers (threads or greenlets) started on demand, ended when idle a while.

    Starting a worker per task costs more than a small task itself on a busy
    server; keeping one parked per session wastes memory. Idle workers are
    shared by all sessions and leave after ``idle_timeout`` seconds.
    """

    def __init__(self, start_worker: Callable[[Callable[[], None]], Any], tasks: Any,
                 idle_timeout: float = 3.0) -> None:
        self.idle_timeout = idle_timeout
        self._start_worker = start_worker
        self._tasks = tasks   # a SimpleQueue of (fn, args) of the matching kind
        self._idle = 0  # workers waiting for a task that no submit has claimed
        # a real lock, held for two lines that never block: fine under gevent too
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        self._tasks.put((fn, args))
        if start:
            self._start_worker(self._work)

    def _work(self) -> None:
        while True:
            try:
                fn, args = self._tasks.get(timeout=self.idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:   # nobody is counting on this worker
                        self._idle -= 1
                        return
                continue                 # a task was promised to the waiting workers
            try:
                fn(*args)
            except Exception:  # the callers log their own errors; this is a last guard
                logger.exception('unhandled error in a worker')
            del fn, args
            with self._lock:
                self._idle += 1


class GeventBackend(Backend):
    name = 'gevent'
    bounds_blocking_calls = True

    def __init__(self) -> None:
        import gevent
        import gevent.event
        import gevent.lock
        import gevent.queue
        self._gevent = gevent
        self._event_class = gevent.event.Event
        self._lock_class = gevent.lock.Semaphore
        self._queue_class = gevent.queue.Queue
        self._pool = _ElasticPool(gevent.spawn, gevent.queue.SimpleQueue())

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        return self._gevent.spawn(fn, *args, **kwargs)  # type: ignore[no-any-return]

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self._pool.submit(fn, args)

    def sleep(self, seconds: float) -> None:
        self._gevent.sleep(seconds)

    def event(self) -> Event:
        return self._event_class()  # type: ignore[no-any-return]

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock_class(1)  # type: ignore[no-any-return]

    def queue(self, maxsize: int = 0) -> Any:
        return self._queue_class(maxsize or None)

    @contextlib.contextmanager
    def timeout(self, seconds: float) -> Iterator[None]:
        with self._gevent.Timeout(seconds, TimeoutError):
            yield


def detect_async_mode() -> str:
    """'gevent' when this process or this request runs on gevent, else 'threading'."""
    gevent = sys.modules.get('gevent')
    if gevent is None:
        return 'threading'
    from gevent import monkey
    if monkey.is_module_patched('threading') or monkey.is_module_patched('socket'):
        return 'gevent'
    if isinstance(gevent.getcurrent(), gevent.Greenlet):
        return 'gevent'
    return 'threading'


def create_backend(async_mode: str | None) -> Backend:
    mode = async_mode or detect_async_mode()
    if mode == 'gevent':
        try:
            return GeventBackend()
        except ImportError:
            # (not "engineio_wsgi[gevent]": this package is not on a registry)
            raise ValueError('async_mode "gevent" needs gevent: pip install gevent') from None
    return ThreadingBackend()
