"""An application that reports its peak thread count, for the bounds tests and
``load/run-bounds``.

Configured from the environment at import time:

    EIO_MAX_WORKER_THREADS   the Server's max_worker_threads (int, optional)
    EIO_PING_INTERVAL, EIO_PING_TIMEOUT   seconds (default 20 and 20)
    EIO_MAX_QUEUED_PACKETS   the Server's max_queued_packets (default 100,000)
    EIO_DISCONNECT_GATE      '1': the disconnect handler waits (at most 60 s)
                             until /__open_gate, as slow application code would
    EIO_LOG_LEVEL            optional: configure logging to stderr at this level

Paths outside the Engine.IO path (plain GETs):

    /__stats                 JSON {"sessions", "threads", "workers", "others", "peak",
                             "peak_workers", "peak_others", "started_others"}: open
                             sessions, live threads, live pool workers, live threads
                             that neither serve a request nor are the heartbeats'
                             scheduler, the most of each seen since the last /__peak
                             (sampled every millisecond), and how many of those
                             other threads were started since then
    /__peak                  the same, and the peaks restart from the current counts
    /__broadcast?n=N&size=S  send N messages of S bytes to every session
    /__disconnect_all        eio.disconnect() of every session
    /__open_gate             let every disconnect handler go on (EIO_DISCONNECT_GATE)
    /__reasons               JSON {sid: [reason, ...]}: what the disconnect handler
                             was called with, in order, for every session so far
    /__handlers              JSON {"waiting", "peak_waiting"}: disconnect handlers
                             waiting at the gate now, and the most at once
    /__flood?sid=S&n=N       a task of its own sends N messages to S, one send()
                             at a time; answers at once
    /__flood_state           JSON {"thread", "sends", "done", "ended_at"}: that
                             task's thread ident, the sends it returned from, whether
                             it finished, and the number of the send after which the
                             session was gone (null while it is not)
    /__disconnect_calls      JSON {sid: {"thread", "inside_send"}}: for each
                             session, the thread its disconnect handler ran on and
                             whether that thread was inside a /__flood send() then

Every message is echoed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import engineio_wsgi

_level = os.environ.get('EIO_LOG_LEVEL', '').strip().upper()
if _level:
    logging.basicConfig(level=getattr(logging, _level, logging.INFO), stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')

_options: dict[str, Any] = {
    'ping_interval': float(os.environ.get('EIO_PING_INTERVAL') or 20),
    'ping_timeout': float(os.environ.get('EIO_PING_TIMEOUT') or 20),
    'max_queued_packets': int(os.environ.get('EIO_MAX_QUEUED_PACKETS') or 100_000),
}
if os.environ.get('EIO_MAX_WORKER_THREADS'):
    _options['max_worker_threads'] = int(os.environ['EIO_MAX_WORKER_THREADS'])
eio = engineio_wsgi.Server(**_options)
_sids: set[str] = set()
_lock = threading.Lock()


@eio.on('connect')
def on_connect(sid: str, environ: dict[str, Any]) -> None:
    with _lock:
        _sids.add(sid)


_GATED = os.environ.get('EIO_DISCONNECT_GATE', '').strip() == '1'
_gate = threading.Event()
#: sid -> the reasons its disconnect handler was called with
_reasons: dict[str, list[str]] = {}
#: sid -> where its disconnect handler ran
_calls: dict[str, dict[str, Any]] = {}
_handlers = {'waiting': 0, 'peak_waiting': 0}
#: inside_send: this thread is in a send() of the flood task
_local = threading.local()
_flood: dict[str, Any] = {'thread': None, 'sends': 0, 'done': False, 'ended_at': None}


@eio.on('disconnect')
def on_disconnect(sid: str, reason: Any = None) -> None:
    with _lock:
        _sids.discard(sid)
        _reasons.setdefault(sid, []).append(str(reason))
        _calls[sid] = {'thread': threading.get_ident(),
                       'inside_send': getattr(_local, 'inside_send', False)}
        if _GATED:
            _handlers['waiting'] += 1
            _handlers['peak_waiting'] = max(_handlers['peak_waiting'], _handlers['waiting'])
    if _GATED:
        _gate.wait(60)
        with _lock:
            _handlers['waiting'] -= 1


def _flood_sends(sid: str, count: int) -> None:
    _flood.update(thread=threading.get_ident(), sends=0, done=False, ended_at=None)
    for i in range(count):
        _local.inside_send = True
        try:
            eio.send(sid, 'x')
        finally:
            _local.inside_send = False
        _flood['sends'] = i + 1
        # (the server's registry: a test app may look inside)
        if _flood['ended_at'] is None and eio._sessions.get(sid) is None:
            _flood['ended_at'] = i + 1
    _flood['done'] = True


@eio.on('message')
def on_message(sid: str, data: str | bytes) -> None:
    eio.send(sid, data)


_HEARTBEAT_THREADS = ('(_carry)',)


def _other(name: str) -> bool:
    """Neither one of gunicorn gthread's request threads nor the heartbeats'
    scheduler (Thread-N (_carry))."""
    return not name.startswith('ThreadPoolExecutor') and not name.endswith(_HEARTBEAT_THREADS)


def _counts() -> tuple[int, int]:
    """(pool workers, threads that neither serve a request nor are the heartbeats' scheduler)."""
    workers = others = 0
    for thread in threading.enumerate():
        name = thread.name
        if name == 'engineio_wsgi-worker':
            workers += 1
        if _other(name):
            others += 1
    return workers, others


#: such other threads started since the last /__peak (however short-lived)
_started = {'others': 0}
_start_thread = threading.Thread.start


def _counted_start(thread: threading.Thread) -> None:
    if _other(thread.name):
        with _lock:
            _started['others'] += 1
    _start_thread(thread)


threading.Thread.start = _counted_start  # type: ignore[method-assign]


class _Sampler:
    """The most threads and pool workers seen, sampled every millisecond."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.peak = threading.active_count()
        self.peak_workers, self.peak_others = _counts()
        threading.Thread(target=self._run, daemon=True, name='bounds-sampler').start()

    def _run(self) -> None:
        while True:
            threads, (workers, others) = threading.active_count(), _counts()
            with self.lock:
                self.peak = max(self.peak, threads)
                self.peak_workers = max(self.peak_workers, workers)
                self.peak_others = max(self.peak_others, others)
            time.sleep(0.001)  # the sampling period

    def report(self, restart: bool) -> dict[str, int]:
        threads, (workers, others) = threading.active_count(), _counts()
        with self.lock:
            report = {'sessions': eio.session_count(), 'threads': threads, 'workers': workers,
                      'others': others, 'peak': max(self.peak, threads),
                      'peak_workers': max(self.peak_workers, workers),
                      'peak_others': max(self.peak_others, others)}
            if restart:
                self.peak, self.peak_workers, self.peak_others = threads, workers, others
        with _lock:
            report['started_others'] = _started['others']
            if restart:
                _started['others'] = 0
        return report


_sampler: _Sampler | None = None
_REPORTS = {'/__reasons': _reasons, '/__disconnect_calls': _calls, '/__handlers': _handlers,
            '/__flood_state': _flood}


def fallback(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    global _sampler
    if _sampler is None:
        _sampler = _Sampler()   # in the worker process, not in a forking parent
    path = environ.get('PATH_INFO')
    query = {k: v[0] for k, v in parse_qs(environ.get('QUERY_STRING', '')).items()}
    result: Any = 'ok'
    if path in ('/__peak', '/__stats'):
        result = _sampler.report(restart=path == '/__peak')
    elif path == '/__broadcast':
        data = 'b' * int(query.get('size', '100'))
        with _lock:
            sids = list(_sids)
        for sid in sids:
            for _ in range(int(query.get('n', '1'))):
                eio.send(sid, data)
    elif path == '/__disconnect_all':
        eio.disconnect()
    elif path == '/__open_gate':
        _gate.set()
    elif path in _REPORTS:
        with _lock:
            result = json.loads(json.dumps(_REPORTS[path]))   # a copy, taken under the lock
    elif path == '/__flood':
        _flood.update(thread=None, sends=0, done=False, ended_at=None)
        eio.start_background_task(_flood_sends, query['sid'], int(query['n']))
    body = json.dumps(result).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


app = engineio_wsgi.WSGIApp(eio, fallback)
