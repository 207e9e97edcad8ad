"""Saying so when several processes serve one application without sharing sessions.

Sessions live in the memory of the process that opened them. When a balancer
that is not sticky (gunicorn's own ``-w N``, a round-robin proxy) spreads one
polling client's requests over several processes, the others refuse them as
unknown sessions and clients reconnect in a loop or lose messages. Two signals
tell this process that it is happening; either logs one WARNING per process
that names the ways out:

* gunicorn runs more than one worker process on this socket. gunicorn has no
  public API for its worker count; every worker process runs inside the
  arbiter's ``spawn_worker`` for its whole life, so the arbiter object (and
  its ``num_workers``) is on the stack of the main thread (under gevent: of
  the root greenlet). That holds for every worker class and needs no config
  hook; ``sys.argv``/``GUNICORN_CMD_ARGS`` parsing would miss config files.
* requests for sids that another engineio_wsgi process issued (the sid's
  process tag, see ``sids``): ``THRESHOLD`` of them within ``WINDOW`` seconds.
  A sid this process issued and ended, or a sid of any other shape, never
  counts. Right after a process starts, clients of the process it replaces
  (a restart) may still send their old sids; they notice the lost connection
  within one ping interval plus ping timeout and then open new sessions, so
  such requests are not counted during that long after this process's first
  request.

Only servers that offer polling warn: WebSocket-only clients need no stickiness.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from types import FrameType
from typing import Any

from . import logs, sids

logger = logging.getLogger('engineio_wsgi.server')

THRESHOLD = 3
WINDOW = 10.0

#: the ways out the warning names, one line each
WAYS_OUT = (
    'run one worker process (gunicorn -w 1; for concurrency -k gevent, or -k gthread '
    'with --threads N)',
    'or balance with stickiness over several one-process servers (nginx: "ip_hash;" or '
    '"hash $remote_addr;" in the upstream block)',
    "or let clients use WebSocket only (transports=['websocket'] on the client)",
    "or share the sessions between the processes on Redis (Server(cluster='redis://host:6379/0'), "
    'pip install "engineio_wsgi[redis]")',
)

_warned = False
_warn_lock = threading.Lock()


def _forget() -> None:
    global _warned, _warn_lock
    _warned = False
    _warn_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget)


def warn_once(why: str) -> bool:
    """Log the warning unless this process already did; True if it logged."""
    global _warned
    with _warn_lock:
        if _warned:
            return False
        _warned = True
    logs.visible(logger).warning(
        'several processes serve this Engine.IO application without sharing sessions '
        '(%s): polling requests of one session land on processes that do not know it, '
        'are refused as unknown sessions (400 "Session ID unknown"), and clients reconnect '
        'in a loop or lose messages. Ways out: %s.', why, '; '.join(WAYS_OUT))
    return True


def _root_frame() -> FrameType | None:
    """The innermost frame of the main thread, or of the root greenlet under gevent."""
    greenlet: Any = sys.modules.get('greenlet')   # loaded by gevent, never imported here
    if greenlet is not None and 'gevent' in sys.modules:
        current = greenlet.getcurrent()
        root = current
        while root.parent is not None:
            root = root.parent
        if root is not current:
            frame: FrameType | None = root.gr_frame
            return frame
    ident = threading.main_thread().ident
    return sys._current_frames().get(ident) if ident is not None else None


def gunicorn_workers() -> int | None:
    """How many worker processes the gunicorn arbiter runs, when inside one."""
    arbiter_module = sys.modules.get('gunicorn.arbiter')
    if arbiter_module is None:
        return None
    arbiter_class = getattr(arbiter_module, 'Arbiter', None)
    if arbiter_class is None:
        return None
    frame = _root_frame()
    while frame is not None:
        owner: Any = frame.f_locals.get('self')
        if isinstance(owner, arbiter_class):
            count = getattr(owner, 'num_workers', None)
            return count if isinstance(count, int) else None
        frame = frame.f_back
    return None


class SeveralProcessesCheck:
    """The two signals for one ``Server``; the warning is once per process."""

    def __init__(self, transports: tuple[str, ...], ping_interval: float,
                 ping_timeout: float) -> None:
        self.enabled = 'polling' in transports
        self.grace = ping_interval + ping_timeout
        self._first_request: float | None = None
        self._pid = os.getpid()
        self._foreign: deque[float] = deque()
        self._lock = threading.Lock()

    def first_request(self) -> None:
        """At the server's first request in this process."""
        self._first_request = time.monotonic()
        self._pid = os.getpid()
        if not self.enabled:
            return
        try:
            workers = gunicorn_workers()
        except Exception:
            logger.debug('could not find the gunicorn arbiter', exc_info=True)
            return
        if workers is not None and workers > 1:
            warn_once(f'gunicorn runs {workers} worker processes on one socket')

    def unknown_sid(self, sid: str) -> None:
        """A request named ``sid`` and no session of this process has it."""
        if not self.enabled or _warned or not sids.issued_elsewhere(sid):
            return
        now = time.monotonic()
        started = self._first_request
        if started is None or self._pid != os.getpid() or now - started < self.grace:
            return
        with self._lock:
            self._foreign.append(now)
            while self._foreign and now - self._foreign[0] > WINDOW:
                self._foreign.popleft()
            count = len(self._foreign)
        if count >= THRESHOLD:
            warn_once(f'{count} requests in {WINDOW:.0f} s named sessions that another '
                      'process opened')
