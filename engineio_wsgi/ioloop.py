"""The event loop that writes what a WebSocket's socket did not take at once.

No thread or greenlet of the engine waits on a client to read. A write to a
WebSocket is one ``send`` that never waits; what the socket does not take
stays queued on the connection, and the loop calls the connection back
when the socket has room again. One loop per process and kind:

- threads: one selector thread (``SelectorLoop``), started on first use
  (again in a forked child). A write's watch is on a duplicate of the
  socket's descriptor, so that the server closing its own descriptor can
  never leave a stale registration behind; the duplicate is closed once the
  watch fired or was cancelled. A connection the engine owns (read by the
  loop) is watched on its own descriptor.
- gevent: the hub (``HubLoop``): an io watcher on the descriptor, and the
  callback runs in a greenlet of its own that ends when it returns.

Callbacks run on the loop and never block: they take short locks, write
without waiting and return. The loop also keeps the close timeouts of
every WebSocket of the process (``call_later``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Callback = Callable[[], None]


class Watch(Protocol):
    def cancel(self) -> None:
        """Forget the watch; its callback will not run (it may be running now)."""


class Loop(Protocol):
    def when_writable(self, sock: Any, callback: Callback) -> Watch:
        """Call ``callback`` once, on the loop, when ``sock`` is writable
        (or has failed: a write then says why)."""

    def while_readable(self, sock: Any, callback: Callback) -> Watch:
        """Call ``callback`` on the loop each time ``sock`` is readable,
        from :meth:`arm` until the watch is cancelled."""

    def arm(self, watch: Watch) -> None:
        """Start a watch of :meth:`while_readable`."""

    def call_soon(self, callback: Callback) -> None:
        """Call ``callback`` on the loop, from any thread."""

    def call_later(self, delay: float, callback: Callback) -> Callback:
        """Call ``callback`` on the loop after ``delay`` seconds; returns a
        function that cancels it."""


def _run(callback: Callback) -> None:
    try:
        callback()
    except Exception:
        logger.exception('an I/O loop callback failed')


class _FdWatch:
    """One armed watch of ``SelectorLoop``: a duplicate descriptor and a
    callback, called once (writable) or each time the descriptor is readable
    until cancelled (``persistent``)."""

    __slots__ = ('fd', 'callback', 'loop', 'persistent')

    def __init__(self, fd: int, callback: Callback, loop: SelectorLoop,
                 persistent: bool = False) -> None:
        self.fd = fd
        self.callback: Callback | None = callback
        self.loop = loop
        #: called each time (and the descriptor is the caller's, not a duplicate)
        self.persistent = persistent

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self.loop._post(('drop', self))


class SelectorLoop:
    """The loop on threads: one thread with a selector, timers and a call queue."""

    def __init__(self) -> None:
        # held for a few lines that never block
        self._lock = threading.Lock()
        self._posted: list[Any] = []
        self._timers: list[list[Any]] = []   # [when, order, callback or None]
        self._order = itertools.count()
        self._selector: selectors.BaseSelector | None = None
        self._wake_w: socket.socket | None = None
        self._woken = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: the loop's thread ident, for checks (``on_loop``)
        self.ident: int | None = None

    # -- from any thread -------------------------------------------------------

    def when_writable(self, sock: Any, callback: Callback) -> Watch:
        watch = _FdWatch(os.dup(sock.fileno()), callback, self)
        self._post(('watch', watch))
        return watch

    def while_readable(self, sock: Any, callback: Callback) -> Watch:
        """Call ``callback`` on the loop each time ``sock`` has data (or an
        end) to read, until the watch is cancelled. The callback reads
        without waiting; what it leaves unread calls it again.

        ``sock`` is the caller's own (no server closes it behind the loop's
        back): the loop watches its descriptor itself. Close it only after
        the watch was cancelled, from a ``call_soon`` made after the
        cancel, which the loop runs after it let go of the descriptor.
        The watch starts at :meth:`arm`, so that the caller holds it before
        its callback can run."""
        return _FdWatch(sock.fileno(), callback, self, persistent=True)

    def arm(self, watch: Watch) -> None:
        """Start a watch of :meth:`while_readable` (a cancelled one never starts)."""
        self._post(('watch', watch))

    def call_soon(self, callback: Callback) -> None:
        self._post(('call', callback))

    def call_later(self, delay: float, callback: Callback) -> Callback:
        entry = [time.monotonic() + delay, next(self._order), callback]
        self._post(('timer', entry))

        def cancel() -> None:
            entry[2] = None   # left in the heap until its time
        return cancel

    def on_loop(self) -> bool:
        return threading.get_ident() == self.ident

    def _post(self, item: Any) -> None:
        with self._lock:
            if self._thread is None or self._pid != os.getpid():   # also after a fork
                self._start()
            self._posted.append(item)
            wake = not self._woken
            self._woken = True
            wake_w = self._wake_w
        if wake and wake_w is not None:
            try:
                wake_w.send(b'\0')
            except OSError:   # full: the loop is awake already
                pass

    def _start(self) -> None:
        """Under ``_lock``: a new selector and thread (this process has none)."""
        selector = selectors.DefaultSelector()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        selector.register(wake_r, selectors.EVENT_READ, None)
        self._selector, self._wake_w = selector, wake_w
        self._posted = []
        self._timers = []
        self._woken = False
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._main, args=(selector, wake_r),
                                        name='engineio_wsgi-io', daemon=True)
        self._thread.start()

    # -- on the loop's thread ------------------------------------------------------

    def _main(self, selector: selectors.BaseSelector, wake_r: socket.socket) -> None:
        self.ident = threading.get_ident()
        timers = self._timers
        while True:
            timeout = None
            if timers:
                timeout = max(0.0, timers[0][0] - time.monotonic())
            try:
                events = selector.select(timeout)
            except OSError:   # pragma: no cover - a descriptor went bad: drop it below
                logger.exception('the I/O loop could not select')
                events = []
            for key, _mask in events:
                watch = key.data
                if watch is None:
                    try:
                        while wake_r.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                if watch.persistent:
                    callback = watch.callback
                    if callback is not None:
                        _run(callback)
                    continue
                self._forget(selector, watch)
                callback, watch.callback = watch.callback, None
                if callback is not None:
                    _run(callback)
            with self._lock:
                posted, self._posted = self._posted, []
                self._woken = False
            for kind, item in posted:
                if kind == 'call':
                    _run(item)
                elif kind == 'timer':
                    heapq.heappush(timers, item)
                elif kind == 'watch':
                    self._register(selector, item)
                elif kind == 'drop':
                    self._forget(selector, item)
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                callback = heapq.heappop(timers)[2]
                if callback is not None:
                    _run(callback)

    @classmethod
    def _register(cls, selector: selectors.BaseSelector, watch: _FdWatch) -> None:
        if watch.callback is None:   # cancelled before it was armed
            cls._forget(selector, watch, registered=False)
            return
        try:
            events = selectors.EVENT_READ if watch.persistent else selectors.EVENT_WRITE
            selector.register(watch.fd, events, watch)
        except (OSError, ValueError, KeyError):
            # a descriptor the selector refuses: let the write say why
            cls._forget(selector, watch, registered=False)
            callback, watch.callback = watch.callback, None
            if callback is not None:
                _run(callback)

    @staticmethod
    def _forget(selector: selectors.BaseSelector, watch: _FdWatch,
                registered: bool = True) -> None:
        """Let go of the watch's descriptor, once."""
        fd = watch.fd
        if fd < 0:
            return
        watch.fd = -1
        if registered:
            try:
                selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        if watch.persistent:   # the caller's descriptor: the caller closes it
            return
        try:
            os.close(fd)
        except OSError:
            pass


class _HubWatch:
    """A watch of ``HubLoop``: one io watcher; a persistent one (a read
    watch) calls back each time until cancelled."""

    __slots__ = ('watcher', 'callback')

    def __init__(self, watcher: Any, callback: Callback | None = None) -> None:
        self.watcher = watcher
        #: a persistent watch's callback (None for a write watch: its own closure)
        self.callback = callback

    def cancel(self) -> None:
        watcher, self.watcher = self.watcher, None
        self.callback = None
        if watcher is not None:
            watcher.stop()
            watcher.close()


class HubLoop:
    """The loop on gevent: the hub's watchers; callbacks run in a greenlet of
    their own (they take locks that may make a greenlet wait, which the
    hub itself must never do)."""

    def __init__(self) -> None:
        import gevent
        self._gevent = gevent

    def when_writable(self, sock: Any, callback: Callback) -> Watch:
        hub = self._gevent.get_hub()
        watcher = hub.loop.io(sock.fileno(), 2)
        watch = _HubWatch(watcher)

        def fired() -> None:
            if watch.watcher is not None:
                watch.cancel()
                self._gevent.spawn_raw(_run, callback)
        watcher.start(fired)
        return watch

    def while_readable(self, sock: Any, callback: Callback) -> Watch:
        """As :meth:`SelectorLoop.while_readable`: ``callback`` each time
        ``sock`` has data (or an end) to read, from :meth:`arm` until the
        watch is cancelled. The watcher rests while its callback runs (a
        callback that waits for a lock must not have a second one start
        beside it): one callback at a time per watch, as on threads.
        Close ``sock`` after the cancel (from ``call_soon``, or at once:
        the cancel here is immediate)."""
        watcher = self._gevent.get_hub().loop.io(sock.fileno(), 1)
        return _HubWatch(watcher, callback)

    def arm(self, watch: Watch) -> None:
        assert isinstance(watch, _HubWatch)
        watcher = watch.watcher
        if watcher is None:   # cancelled before it was armed
            return
        spawn = self._gevent.spawn_raw

        def run() -> None:
            callback = watch.callback
            if callback is not None:
                _run(callback)
            if watch.watcher is watcher:   # not cancelled meanwhile
                watcher.start(fired)

        def fired() -> None:
            watcher.stop()
            spawn(run)
        watcher.start(fired)

    def call_soon(self, callback: Callback) -> None:
        self._gevent.spawn_raw(_run, callback)

    def call_later(self, delay: float, callback: Callback) -> Callback:
        glet = self._gevent.spawn_later(delay, _run, callback)
        return lambda: glet.kill(block=False)

    def on_loop(self) -> bool:
        return False


_SELECTOR_LOOP = SelectorLoop()
_HUB_LOOP: HubLoop | None = None


def for_threads() -> SelectorLoop:
    """The selector loop of this process."""
    return _SELECTOR_LOOP


def for_gevent() -> HubLoop:
    """The hub's loop (gevent must be importable)."""
    global _HUB_LOOP
    if _HUB_LOOP is None:
        _HUB_LOOP = HubLoop()
    return _HUB_LOOP
