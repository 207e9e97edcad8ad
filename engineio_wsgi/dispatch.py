"""Incoming messages and the end of the session, to the application: in
order, on the backend's shared pool (``run_soon``), never on the thread that
received or ended anything.

A worker is started when the first message arrives and is gone when the
inbox is empty, so an idle session holds no dispatch thread. The end of the
session is reported once, after the messages already received, on such a
worker too: whoever ends a session (a ``send()`` that finds the queue full,
the heartbeat's scheduler, a WebSocket's reader) never runs the disconnect
handler itself. The exceptions are a server disconnect and a shutdown,
reported at the call on the caller's thread (python-engineio's
``disconnect(sid)``: the caller expects it done when the call returns). The
inbox is guarded by the session's lock; the application is never called
under it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from . import locks
from .lifecycle import State
from .reasons import Reason
from .transport import Host, RateLimited

logger = logging.getLogger(__name__)

#: reported at the call: the caller expects it, and drops what is unhandled
_REPORTED_AT_ONCE = frozenset({Reason.SERVER_DISCONNECT, Reason.SERVER_SHUTDOWN})


class Dispatcher:
    __slots__ = ('_session', '_lock', '_on_message', '_on_close', '_inbox', '_running',
                 '_notified', '_rate')

    def __init__(self, session: Host,
                 on_message: Callable[[Any, str | bytes], None],
                 on_close: Callable[[Any, str], None]) -> None:
        self._session = session
        self._lock = session.lock
        self._on_message = on_message
        self._on_close = on_close
        #: what the worker is to handle, oldest first; None while there is
        #: nothing (an idle session keeps no buffer), made by the first message
        self._inbox: deque[Any] | None = None
        self._running = False
        #: the end was reported: later messages are dropped
        self._notified = False
        rate = session.options.message_rate_limit
        self._rate = (RateLimit(rate[0], rate[1], session.backend.monotonic())
                      if rate else None)

    @property
    def running(self) -> bool:
        return self._running

    def message(self, data: str | bytes) -> None:
        """A message from the client; raises ``RateLimited`` over the limit."""
        session = self._session
        if self._rate is not None and not self._rate.allow(session.backend.monotonic()):
            raise RateLimited('message rate limit exceeded')
        if session.state is not State.OPEN:
            logger.debug('%s message after the end dropped', session.sid)
            return
        if not session.options.async_handlers:
            self._on_message(session, data)
            return
        with self._lock:
            self._queue().append(data)
            start = not self._running
            self._running = True
        if start:
            session.backend.run_soon(self._drain)

    def close_later(self, reason: Reason) -> bool:
        """Close the session after the messages queued so far; False when none
        are: the caller closes it now. Caller holds the session's lock."""
        assert not locks.CHECK or locks.held(self._lock)
        if not self._running:
            return False
        self._queue().append(_CloseLater(reason))
        return True

    def closed(self, reason: Reason) -> None:
        """Report the end once, on a worker, after the messages already
        received; a server disconnect or shutdown now, on this thread."""
        at_once = reason in _REPORTED_AT_ONCE
        with self._lock:
            if at_once:
                self._notified = True
                self._inbox = None
                start = False
            else:
                self._queue().append(_Closed(reason))
                start = not self._running
                self._running = True
        if at_once:
            self._on_close(self._session, reason)
        elif start:
            try:
                self._session.backend.run_soon(self._drain)
            except Exception:
                # (the session has ended either way: the caller goes on)
                logger.exception('%s the end could not be handed to a worker now; the next '
                                 'worker to start reports it', self._session.sid)

    def _queue(self) -> deque[Any]:
        """The inbox, made on first use. Caller holds the session's lock."""
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        return inbox

    def _drain(self) -> None:
        session = self._session
        while True:
            with self._lock:
                inbox = self._inbox
                if not inbox:
                    self._running = False
                    self._inbox = None   # its buffer goes back until the next message
                    return
                item = inbox.popleft()
                if isinstance(item, _Closed):
                    self._notified = True
            if isinstance(item, _CloseLater):
                session.close(item.reason)
            elif isinstance(item, _Closed):
                self._on_close(session, item.reason)
            elif not self._notified:
                self._on_message(session, item)


class RateLimit:
    """A token bucket: ``count`` messages per ``seconds``, bursts up to ``count``."""

    __slots__ = ('capacity', 'rate', 'tokens', 'updated')

    def __init__(self, count: int, seconds: float, now: float) -> None:
        self.capacity = float(count)
        self.rate = count / seconds
        self.tokens = float(count)
        self.updated = now

    def allow(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class _Closed:
    __slots__ = ('reason',)

    def __init__(self, reason: Reason) -> None:
        self.reason = reason


class _CloseLater:
    __slots__ = ('reason',)

    def __init__(self, reason: Reason) -> None:
        self.reason = reason
