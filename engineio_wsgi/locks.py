"""Locks that can say who holds them, for checking lock rules in debug runs.

A method that must be called with a lock held says so in its docstring and
starts with ``assert not locks.CHECK or locks.held(lock)``. In production
``CHECK`` is False: ``guarded`` returns the backend's own lock unchanged and
the assertion costs one global lookup. With ``ENGINEIO_WSGI_DEBUG_LOCKS=1``
(the test suite sets it, and the servers it starts inherit it) ``guarded``
wraps the lock in one that records its owner, so a rule broken anywhere in a
test run fails there.

The owner is the current greenlet when greenlet is importable (under gevent
that tells greenlets apart, monkey-patched or not; under threads each thread
has its own), else the thread.
"""

from __future__ import annotations

import os
import threading
from typing import Any

CHECK = os.environ.get('ENGINEIO_WSGI_DEBUG_LOCKS', '') == '1'

try:
    from greenlet import getcurrent as _current  # type: ignore[import-untyped,unused-ignore]
except ImportError:   # pragma: no cover - greenlet comes with gevent
    _current = threading.get_ident  # type: ignore[assignment]


class OwnedLock:
    """A lock that remembers which thread or greenlet holds it."""

    __slots__ = ('_lock', '_owner')

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self._owner: Any = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout == -1:
            got = self._lock.acquire(blocking)
        else:
            got = self._lock.acquire(blocking, timeout)
        if got:
            self._owner = _current()
        return bool(got)

    def release(self) -> None:
        self._owner = None
        self._lock.release()

    def __enter__(self) -> OwnedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def held(self) -> bool:
        return self._owner is not None and self._owner is _current()


def guarded(lock: Any) -> Any:
    """``lock`` itself in production; a lock that knows its owner when checking."""
    return OwnedLock(lock) if CHECK else lock


def held(lock: Any) -> bool:
    """True when the caller holds ``lock`` (only meaningful when ``CHECK``)."""
    return lock.held() if isinstance(lock, OwnedLock) else True
