"""The engineio_wsgi echo server with one of PROFILE.md's proposals patched in, to check
its expected gain before anyone writes it properly.

These patches reach into engineio_wsgi's internals as they are at f99bd47 and will stop
applying as the code changes; they are for measuring only (``bench/experiment.py``),
never for serving. BENCH_EXPERIMENT is a comma-separated list of:

- ``locks``: the locks that guard sections that never block (``WSConnection._state_lock``,
  the worker pool's lock) are the interpreter's own lock, not gevent's patched one.
- ``peer_gone``: ``servers.peer_gone`` in one system call, ``recv(1, MSG_PEEK |
  MSG_DONTWAIT)`` on the real socket, instead of a ``select.poll`` object.
- ``post_wake``: a POST does not wake the heartbeat (the body deadline is then not watched:
  a measurement of what the wake-up costs, not a fix).
- ``hb_timer`` (gevent): no heartbeat greenlet per session; a libev timer per session
  runs each heartbeat step on the shared worker pool when it is due. Wake-ups before
  the deadline (a pong, a close) are not seen until then: what the greenlet costs, not
  a fix.
- ``inline_write``: ``Session.enqueue`` writes to the WebSocket on the caller's thread
  instead of handing the flush to the worker pool: the upper bound of what a
  non-blocking inline write can gain (this one blocks a sender on a client that does
  not read: measurement only).
- ``hb_shared`` (either mode): no heartbeat thread or greenlet per session; one scheduler
  (a heap of the sessions' deadlines, one thread) runs each heartbeat step on the shared
  worker pool when it is due; early wake-ups are not seen, as with ``hb_timer``.
"""

import os
import socket
import types

import engineio_wsgi  # noqa: F401  (the package first, then its modules)
from engineio_wsgi import backends, servers, session, wsconn

CHOSEN = {x for x in os.environ.get('BENCH_EXPERIMENT', '').split(',') if x}
UNKNOWN = CHOSEN - {'locks', 'peer_gone', 'post_wake', 'hb_timer', 'hb_shared', 'inline_write'}
if UNKNOWN:
    raise SystemExit(f'unknown BENCH_EXPERIMENT {sorted(UNKNOWN)}')

if 'locks' in CHOSEN:
    import threading

    try:
        from gevent.monkey import get_original
        real_lock = get_original('_thread', 'allocate_lock')
    except ImportError:
        import _thread
        real_lock = _thread.allocate_lock
    shim = types.ModuleType('threading')
    shim.__dict__.update(vars(threading))
    shim.Lock = real_lock
    wsconn.threading = shim
    backends.threading = shim

if 'peer_gone' in CHOSEN:
    _FLAGS = socket.MSG_PEEK | socket.MSG_DONTWAIT

    def peer_gone(sock):
        raw = getattr(sock, '_sock', sock)   # gevent's socket would wait for data
        try:
            return raw.recv(1, _FLAGS) == b''
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    servers.peer_gone = peer_gone

if 'post_wake' in CHOSEN:
    original_begin_post = session.Session.begin_post

    def begin_post(self, abort=None):
        return original_begin_post(self, None)

    session.Session.begin_post = begin_post

if 'hb_timer' in CHOSEN:
    import gevent

    def _arm(sess, deadline):
        timer = gevent.get_hub().loop.timer(max(0.0, deadline - sess.backend.monotonic()))
        sess._hb_timer = timer      # kept with the session while armed
        timer.start(sess.backend.run_soon, _step, sess)

    def _step(sess):
        try:
            deadline = sess.heartbeat_step()
        except Exception:
            sess.close(session.Reason.TRANSPORT_ERROR, farewell=False)
            return
        if deadline is not None:
            _arm(sess, deadline)

    def start(self):
        opts = self.options
        self._heartbeat = session.Heartbeat(self.backend.monotonic(), opts.ping_interval,
                                            opts.ping_timeout + opts.ping_grace)
        _arm(self, self._heartbeat.deadline)

    session.Session.start = start

if 'hb_shared' in CHOSEN:
    import heapq
    import itertools
    import threading
    import time

    class _Scheduler:
        def __init__(self):
            self._heap = []
            self._order = itertools.count()
            self._cond = None
            self._lock = threading.Lock()

        def add(self, when, sess):
            with self._lock:
                if self._cond is None:   # made here: gevent's when gevent patched threading
                    self._cond = threading.Condition()
                    threading.Thread(target=self._run, daemon=True,
                                     name='heartbeats').start()
            with self._cond:
                heapq.heappush(self._heap, (when, next(self._order), sess))
                if self._heap[0][2] is sess:
                    self._cond.notify()

        def _run(self):
            heap = self._heap
            while True:
                with self._cond:
                    while True:
                        wait = heap[0][0] - time.monotonic() if heap else None
                        if wait is not None and wait <= 0:
                            sess = heapq.heappop(heap)[2]
                            break
                        self._cond.wait(wait)
                sess.backend.run_soon(_shared_step, sess)

    _SCHEDULER = _Scheduler()

    def _shared_step(sess):
        try:
            deadline = sess.heartbeat_step()
        except Exception:
            sess.close(session.Reason.TRANSPORT_ERROR, farewell=False)
            return
        if deadline is not None:
            _SCHEDULER.add(deadline, sess)

    def shared_start(self):
        opts = self.options
        self._heartbeat = session.Heartbeat(self.backend.monotonic(), opts.ping_interval,
                                            opts.ping_timeout + opts.ping_grace)
        _SCHEDULER.add(self._heartbeat.deadline, self)

    session.Session.start = shared_start

if 'inline_write' in CHOSEN:
    def enqueue(self, packet):
        with self._lock:
            if self.state is not session.State.OPEN:
                return False
            if len(self._outbox) >= self.options.max_queued_packets:
                overflow = True
            else:
                overflow = False
                self._outbox.append(packet)
                flush = self._writer is not None and not self._flushing
                if flush:
                    self._flushing = True
        if overflow:
            self.close(session.Reason.SEND_BUFFER_FULL, farewell=False, abort=True)
            return False
        if flush:
            self._flush()            # here, not on a pool worker
        else:
            self._wake.set()
        return True

    session.Session.enqueue = enqueue

from eiowsgi_echo import eio  # noqa: E402

app = engineio_wsgi.WSGIApp(eio)
