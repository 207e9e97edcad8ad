"""The Engine.IO server: the application's API (python-engineio's ``Server``).

Requests go through :mod:`~engineio_wsgi.pipeline`; the application's event
handlers are called by :mod:`~engineio_wsgi.handlers` only.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import logs, sids
from .backends import (
    Backend,
    DeferredTask,
    Task,
    create_backend,
    detect_async_mode,
    start_mismatch,
)
from .handlers import EVENTS, AppHandlers, Handler
from .options import Options
from .packets import Packet, PacketType
from .pipeline import RequestPipeline
from .reasons import Reason
from .registry import SessionRegistry
from .response import StartResponse
from .wsgi_servers import telling_close

logger = logging.getLogger(__name__)

#: every Server of this process, for process-wide shutdown (gunicorn_hooks)
_servers: weakref.WeakSet[Server] = weakref.WeakSet()


def running_servers() -> list[Server]:
    return list(_servers)


class Server:
    """An Engine.IO v4 server for WSGI applications.

    Takes every keyword argument of python-engineio's ``Server``; see the
    README for what each does here. Unknown names raise ``TypeError``.
    """

    reason = Reason

    def __init__(self, **kwargs: Any) -> None:
        self.options = Options.from_kwargs(**kwargs)
        wrong = start_mismatch(self.options.async_mode)
        if wrong is not None:
            raise ValueError(wrong)
        #: where the library's records go (python-engineio's ``Server.logger``)
        self.logger = logs.configure(self.options.logger)
        self._handlers = AppHandlers()
        #: event name -> handler, as in python-engineio
        self.handlers: dict[str, Handler] = self._handlers.by_event
        self._sessions = SessionRegistry()
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()   # held while deciding only
        #: background tasks asked for before the mode was known
        self._deferred: list[DeferredTask] = []
        self._pipeline = RequestPipeline(self.options, self._sessions, self._handlers,
                                         self._backend_for, self.generate_id)
        #: ``cluster=``: the sessions of other processes (imported only then)
        self._cluster: Any = None
        if self.options.cluster is not None:
            from .cluster.link import ClusterLink
            self._cluster = ClusterLink(self.options.cluster, self.options, self._sessions,
                                        self._backend_for)
            self._pipeline.join_cluster(self._cluster)
        _servers.add(self)

    # -- configuration ----------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The concurrency backend; deciding it now if no request did yet."""
        return self._backend or self._decide_backend(None)

    def decide_async_mode(self, mode: str) -> None:
        """Decide ``async_mode`` now rather than at the first request, for a
        caller that starts the WSGI server itself and so knows what it runs on
        (``engineio_wsgi.flask_socketio.SocketIO.run``). ``ValueError`` when
        ``async_mode`` was given as another mode, or is decided already as one."""
        if self.options.async_mode not in (None, mode):
            raise ValueError(f'async_mode={self.options.async_mode!r} was given; '
                             f'this server cannot run as {mode!r}')
        decided = self._decide_backend(None, mode).name
        if decided != mode:
            raise ValueError(f'async_mode is {decided!r} already (decided at the first '
                             f'request); it cannot become {mode!r}')

    def _decide_backend(self, sock: Any, mode: str | None = None) -> Backend:
        """Decide ``async_mode`` once; start the tasks that waited for it."""
        with self._backend_lock:
            if self._backend is not None:
                return self._backend
            mode = mode or self.options.async_mode or detect_async_mode(sock)
            backend = self._backend = create_backend(mode, self.options.max_worker_threads)
            deferred, self._deferred = self._deferred, []
        logger.info('using %s', backend.name)
        for task in deferred:
            task.start(backend)
        return backend

    @property
    def async_mode(self) -> str:
        """'threading' or 'gevent'. Before the first request (with
        ``async_mode=None``) the detector's view so far, without deciding."""
        if self._backend is not None:
            return self._backend.name
        return self.options.async_mode or detect_async_mode()

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register an event handler; usable as ``@eio.on('message')`` too."""
        if event not in EVENTS:
            raise ValueError(f'unknown event {event!r}; expected one of {EVENTS}')

        def register(fn: Handler) -> Handler:
            self._handlers.register(event, fn)
            return fn
        return register(handler) if handler is not None else register

    # -- the application's API --------------------------------------------------

    def send(self, sid: str, data: str | bytes) -> None:
        """Send a message; ignored (logged at DEBUG) when the session has ended.

        With ``cluster=``, a session of another process is sent to there (in
        order per sender); ignored when that process is gone; raises
        ``engineio_wsgi.cluster.ClusterUnavailable`` when Redis cannot be reached.
        """
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif isinstance(data, str):
            check_encodable(data)
        elif not isinstance(data, bytes):
            raise TypeError(f'message data must be str or bytes, not {type(data).__name__}')
        session = self._sessions.get(sid)
        if session is None and self._remote(sid):
            if not self._cluster.send(sid, [Packet(PacketType.MESSAGE, data)]):
                logger.debug('%s send() ignored: the process that owned it is gone', sid)
            return
        if session is None or session.closed:
            logger.debug('%s send() to an ended session ignored', sid)
            return
        if isinstance(data, str):
            session.check_text(data)
        session.enqueue(Packet(PacketType.MESSAGE, data))

    def send_packet(self, sid: str, pkt: Any) -> None:
        """Send a message packet built the python-engineio way.

        ``pkt`` needs ``packet_type`` (4, MESSAGE) and ``data`` (str or bytes),
        as python-engineio's ``Packet`` has them; python-socketio sends every
        emit this way. Other packet types are the engine's own business here
        (heartbeat, close, upgrade) and raise ``ValueError``.
        """
        if pkt.packet_type != PacketType.MESSAGE:
            raise ValueError(f'send_packet() sends MESSAGE (4) packets, not type '
                             f'{pkt.packet_type!r}; use disconnect() to close a session')
        self.send(sid, pkt.data)

    def disconnect(self, sid: str | None = None) -> None:
        """End one session, or all of them; never waits for a client.

        With ``cluster=``, a session of another process is ended there (as
        ``send``); ``disconnect()`` without a sid ends this process's sessions.
        """
        if sid is not None and self._sessions.get(sid) is None and self._remote(sid):
            if not self._cluster.disconnect(sid):
                logger.debug('%s disconnect() ignored: the process that owned it is gone', sid)
            return
        sessions = list(self._sessions) if sid is None else [self._sessions.get(sid)]
        for session in sessions:
            if session is not None:
                session.close(Reason.SERVER_DISCONNECT)

    def disconnecting(self, sid: str) -> contextlib.AbstractContextManager[None]:
        """A block in which the application ends session ``sid`` itself (sends
        its goodbye, runs its own disconnect handling): if the client's end
        arrives meanwhile, the ``disconnect`` event waits until the block is
        left, so the session stays readable (``get_session``) inside it.
        ``engineio_wsgi.socketio.Server.disconnect`` uses it."""
        return self._handlers.holding(sid)

    def _remote(self, sid: str) -> bool:
        """Whether ``sid`` belongs to another process of this server's cluster."""
        cluster = self._cluster
        if cluster is None:
            return False
        cluster.start()
        return cluster.owner_elsewhere(sid) is not None

    def transport(self, sid: str) -> str:
        """'polling' or 'websocket'; raises ``KeyError`` for an unknown sid (also
        for a session of another process of a cluster: its state lives there)."""
        return self._handlers.readable(sid).transport

    def get_session(self, sid: str) -> dict[str, Any]:
        """The application's own data for this session (a dict). With
        ``cluster=`` it lives in the process that owns the session: ``KeyError``
        elsewhere, as for an unknown sid."""
        session = self._handlers.readable(sid)
        data = session.user_data
        if data is None:
            with session.lock:   # two first askers get the same dict
                data = session.user_data
                if data is None:
                    data = session.user_data = {}
        return data

    def save_session(self, sid: str, session: dict[str, Any]) -> None:
        self._handlers.readable(sid).user_data = session

    @contextlib.contextmanager
    def session(self, sid: str) -> Iterator[dict[str, Any]]:
        data = self.get_session(sid)
        try:
            yield data
        finally:
            self.save_session(sid, data)

    def start_background_task(self, target: Callable[..., Any], *args: Any,
                              **kwargs: Any) -> Task:
        """Run ``target`` as a thread or a greenlet, as the backend does.

        With ``async_mode=None``, before the first request, in a process
        gevent has not patched, the mode is not known yet (an unpatched
        gevent server is only seen at its first request): the task starts
        then, in the mode decided.
        """
        if (self._backend is None and self.options.async_mode is None
                and detect_async_mode() == 'threading'):
            task = DeferredTask(target, args, kwargs)
            with self._backend_lock:
                if self._backend is None:
                    self._deferred.append(task)
                    return task
        return self.backend.spawn(target, *args, **kwargs)

    def sleep(self, seconds: float = 0) -> None:
        self.backend.sleep(seconds)

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        return self.backend.queue(*args, **kwargs)

    def create_event(self, *args: Any, **kwargs: Any) -> Any:
        # python-engineio's signature; the events of both async modes take no arguments
        if args or kwargs:
            raise TypeError('create_event() takes no arguments')
        return self.backend.event()

    def get_queue_empty_exception(self) -> type[Exception]:
        """What ``create_queue()`` queues raise when empty (gevent's is the same)."""
        return queue.Empty

    def shutdown(self) -> None:
        """Close every session (clients receive ``1``), waiting at most
        ``shutdown_timeout`` seconds; new handshakes are refused from now on."""
        self._pipeline.shutting_down = True
        for session in list(self._sessions):
            session.close(Reason.SERVER_SHUTDOWN)
        deadline = self.backend.monotonic() + self.options.shutdown_timeout
        while len(self._sessions) and self.backend.monotonic() < deadline:
            self.backend.sleep(0.02)
        for session in list(self._sessions):  # clients that never came back for it
            session.end()

    @staticmethod
    def generate_id() -> str:
        return sids.new_sid()  # 20 URL-safe characters: this process's tag, 96 random bits

    def session_count(self) -> int:
        return len(self._sessions)

    def cluster_ready(self) -> bool:
        """For a health check: with ``cluster=``, whether this process listens
        on Redis (while it does not, handshakes are refused with 503); True
        without ``cluster=``."""
        return self._cluster is None or self._cluster.ready()

    # -- the request pipeline ---------------------------------------------------

    def handle_request(self, environ: dict[str, Any],
                       start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point for Engine.IO requests."""
        return self._pipeline.handle(environ, telling_close(environ, start_response))

    def _backend_for(self, sock: Any) -> Backend:
        return self._backend or self._decide_backend(sock)


def check_encodable(text: str) -> None:
    """Refuse text that has no UTF-8 form (lone surrogates) before it is queued:
    found later, it would cost the whole batch (polling) or the connection."""
    if text.isascii():
        return
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        raise ValueError('text with lone surrogates cannot be sent: it has no UTF-8 form') \
            from None
