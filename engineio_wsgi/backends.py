"""Concurrency backends: plain threads, or gevent greenlets, and the one
detector that picks between them (``detect_async_mode``).

Sessions and the server ask their backend for events, locks, queues, sleeping
and spawning, so one code path serves both. The exceptions: the WebSocket
layer (``rfc6455``) picks its locks and waits from the socket it runs on (it
also works without a server), and a few short critical sections that never
block use a plain ``threading.Lock``, which is safe under gevent too.
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
        """Run ``fn`` off the caller's thread, on a shared worker (threading:
        at most ``max_worker_threads`` at once; later calls wait their turn)."""
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

    def __init__(self, max_workers: int | None = None) -> None:
        self._pool = _ElasticPool(_start_thread, queue.SimpleQueue(), max_workers=max_workers)

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
    shared by all sessions and leave after ``idle_timeout`` seconds. With
    ``max_workers`` no more run at once: further tasks wait in order for a
    worker to be free.
    """

    def __init__(self, start_worker: Callable[[Callable[[], None]], Any], tasks: Any,
                 idle_timeout: float = 3.0, max_workers: int | None = None) -> None:
        self.idle_timeout = idle_timeout
        self.max_workers = max_workers
        self._start_worker = start_worker
        self._tasks = tasks   # a SimpleQueue of (fn, args) of the matching kind
        self._workers = 0   # started and not gone
        self._idle = 0      # workers waiting for a task that no submit has claimed
        self._backlog = 0   # tasks queued that no worker is counted for yet
        # a real lock, held for a few lines that never block: fine under gevent too
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with self._lock:
            start = False
            if self._idle > 0:
                self._idle -= 1
            elif self.max_workers is None or self._workers < self.max_workers:
                self._workers += 1
                start = True
            else:
                self._backlog += 1   # the next worker to finish takes it
        self._tasks.put((fn, args))
        if start:
            try:
                self._start_worker(self._work)
            except BaseException:
                with self._lock:
                    self._workers -= 1
                    self._backlog += 1   # left for a running worker, if any
                raise

    def _work(self) -> None:
        while True:
            try:
                fn, args = self._tasks.get(timeout=self.idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:   # nobody is counting on this worker
                        self._idle -= 1
                        self._workers -= 1
                        return
                continue                 # a task was promised to the waiting workers
            try:
                fn(*args)
            except Exception:  # the callers log their own errors; this is a last guard
                logger.exception('unhandled error in a worker')
            del fn, args
            with self._lock:
                if self._backlog > 0:
                    self._backlog -= 1   # a queued task is this worker's now
                else:
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


class DeferredTask:
    """A background task asked for before the backend was known; it starts
    once the backend is decided. ``join`` waits for it to start, then to end."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self._call = (fn, args, kwargs)
        self._task: Task | None = None
        self._started = threading.Event()

    def start(self, backend: Backend) -> None:
        fn, args, kwargs = self._call
        self._task = backend.spawn(fn, *args, **kwargs)
        self._started.set()

    def join(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._started.wait(timeout):
            return None
        assert self._task is not None
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._task.join(left)


def detect_async_mode(sock: Any = None) -> str:
    """'gevent' when this process or this request runs on gevent, else 'threading'.

    The one detector of the library. ``sock`` is the request's connection
    when known: gevent's cooperative socket tells an unpatched gevent server.
    'gevent' is certain; 'threading' before any request may still turn out
    to be gevent at the first one (an unpatched gevent server).
    """
    gevent = sys.modules.get('gevent')
    if gevent is None:
        return 'threading'
    if threading_patched() or _module_patched('socket'):
        return 'gevent'
    if sock is not None and type(sock).__module__.startswith('gevent'):
        return 'gevent'
    if isinstance(gevent.getcurrent(), gevent.Greenlet):
        return 'gevent'
    return 'threading'


def mode_mismatch(mode: str, sock: Any, server: str) -> tuple[bool, str] | None:
    """What is wrong with running ``mode`` where this request runs (on
    ``server``, its name), or None. Called in the request's own thread or
    greenlet. ``(True, text)``: it cannot work, every request is refused;
    ``(False, text)``: it works, but another mode fits better.
    """
    here = detect_async_mode(sock)
    if mode == 'gevent' and here != 'gevent':
        return True, (
            f'async_mode="gevent", but {server} runs this request on a thread, not on '
            f'gevent: gevent waits would stall it. Fix: Server(async_mode="threading") '
            f'(or leave async_mode unset: it is detected), or serve with gevent '
            f'(gunicorn -k gevent). Engine.IO requests are refused until then.')
    if mode == 'threading' and threading_patched():
        return False, (
            f'async_mode="threading" in a process gevent has monkey-patched ({server}): '
            f'it works, threads are greenlets here, but message handlers run at most '
            f'max_worker_threads at once, and each POST needs a watchdog of its own. '
            f'Fix: Server(async_mode="gevent") (or leave async_mode unset).')
    return None


def start_mismatch(mode: str | None) -> str | None:
    """What is wrong with ``mode`` where this server is being built, when that
    is known before any request, or None. Under gunicorn the worker class is
    (its module is imported before the application: in the master with
    ``--preload``, in the worker otherwise); other servers start after the
    application is built and are judged at the first request (``mode_mismatch``).
    """
    worker = _gunicorn_thread_worker()
    if mode == 'gevent' and worker is not None and not threading_patched():
        return (f'async_mode="gevent", but gunicorn -k {worker} runs requests on threads, '
                f'not on gevent: gevent waits would stall them. Fix: '
                f'Server(async_mode="threading") (or leave async_mode unset: it is '
                f'detected), or serve with gevent (gunicorn -k gevent).')
    return None


def _gunicorn_thread_worker() -> str | None:
    """'gthread' or 'sync' when this process runs gunicorn's worker of that
    class (requests on OS threads), else None (not gunicorn, or gevent)."""
    if 'gunicorn.workers.ggevent' in sys.modules:   # gevent's, gevent-websocket's
        return None
    for worker in ('gthread', 'sync'):
        if f'gunicorn.workers.{worker}' in sys.modules:
            return worker
    return None


def threading_patched() -> bool:
    """True when gevent made ``threading`` cooperative (its locks are greenlet-safe)."""
    return _module_patched('threading')


def _module_patched(name: str) -> bool:
    monkey = sys.modules.get('gevent.monkey')
    return monkey is not None and bool(monkey.is_module_patched(name))


def create_backend(async_mode: str | None, max_worker_threads: int | None = None) -> Backend:
    mode = async_mode or detect_async_mode()
    if mode == 'gevent':
        try:
            return GeventBackend()
        except ImportError:
            # (not "engineio_wsgi[gevent]": this package is not on a registry)
            raise ValueError('async_mode "gevent" needs gevent: pip install gevent') from None
    return ThreadingBackend(max_worker_threads)
