"""The Engine.IO server: request pipeline, sessions, and the application's API.

This is the only module that calls application code (the event handlers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import logs, polling, sids, websocket
from .backends import Backend, DeferredTask, Task, create_backend, detect_async_mode
from .callables import takes_args
from .cors import CorsPolicy
from .errors import (
    BadHandshakeMethod,
    BadRequest,
    ConnectionRefusedError,
    Forbidden,
    RequestError,
    ServiceUnavailable,
    TooManyRequests,
    UnknownSid,
)
from .lifecycle import State
from .options import Options
from .packets import Packet, PacketType
from .reasons import Reason
from .registry import Refusal, SessionRegistry
from .rejectlog import RejectLog
from .request import Request, parse_request
from .response import Headers, StartResponse, cookie_parts, render_error, respond
from .session import Session
from .transport import Unconnected
from .workers import SeveralProcessesCheck
from .wsgi_servers import ServerAdapter

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]
EVENTS = ('connect', 'message', 'disconnect')
#: the refusal message when the connect handler gives none (python-engineio's)
REFUSED = 'Unauthorized'

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
        #: where the library's records go (python-engineio's ``Server.logger``)
        self.logger = logs.configure(self.options.logger)
        self.handlers: dict[str, Handler] = {}
        self._disconnect_takes_reason = True
        self._sessions = SessionRegistry()
        #: sessions the application may still read: from before the connect
        #: handler until the disconnect handler returned, whatever the state
        self._reachable: dict[str, Session] = {}
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()   # held while deciding only
        #: background tasks asked for before the mode was known
        self._deferred: list[DeferredTask] = []
        self._cors = CorsPolicy(self.options.cors_allowed_origins, self.options.cors_credentials)
        self._rejects = RejectLog()
        self._several = SeveralProcessesCheck(self.options.transports, self.options.ping_interval,
                                              self.options.ping_timeout)
        self._diagnosed = False
        self._websocket_ok: bool | None = None
        self._shutting_down = False
        _servers.add(self)

    # -- configuration ----------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The concurrency backend; deciding it now if no request did yet."""
        return self._backend or self._decide_backend(None)

    def _decide_backend(self, sock: Any) -> Backend:
        """Decide ``async_mode`` once; start the tasks that waited for it."""
        with self._backend_lock:
            if self._backend is not None:
                return self._backend
            mode = self.options.async_mode or detect_async_mode(sock)
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
            self.handlers[event] = fn
            if event == 'disconnect':
                self._disconnect_takes_reason = takes_args(fn, 2)
            return fn
        return register(handler) if handler is not None else register

    # -- the application's API --------------------------------------------------

    def send(self, sid: str, data: str | bytes) -> None:
        """Send a message; ignored (logged at DEBUG) when the session has ended."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif isinstance(data, str):
            check_encodable(data)
        elif not isinstance(data, bytes):
            raise TypeError(f'message data must be str or bytes, not {type(data).__name__}')
        session = self._sessions.get(sid)
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
        """End one session, or all of them; never waits for a client."""
        sessions = list(self._sessions) if sid is None else [self._sessions.get(sid)]
        for session in sessions:
            if session is not None:
                session.close(Reason.SERVER_DISCONNECT)

    def transport(self, sid: str) -> str:
        """'polling' or 'websocket'; raises ``KeyError`` for an unknown sid."""
        return self._session_or_key_error(sid).transport

    def get_session(self, sid: str) -> dict[str, Any]:
        """The application's own data for this session (a dict)."""
        return self._session_or_key_error(sid).user_data

    def save_session(self, sid: str, session: dict[str, Any]) -> None:
        self._session_or_key_error(sid).user_data = session

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
        self._shutting_down = True
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

    # -- the request pipeline ---------------------------------------------------

    def handle_request(self, environ: dict[str, Any],
                       start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point for Engine.IO requests."""
        # the one place the environ is read; below this, the Request and its adapter
        request = Request(environ)
        if self._backend is None:
            self._decide_backend(request.adapter.sock)
        if not self._diagnosed:
            self._diagnose(request.adapter)
        headers: Headers = []
        allowed = self._cors.allows(request)
        try:
            if request.origin is not None and allowed:
                # errors carry the CORS headers the request would have had
                headers = self._cors.headers(request, request.raw_method == 'OPTIONS')
            parse_request(request, self.options.transports)
            if not allowed:
                raise Forbidden('origin not allowed')
            if request.method == 'OPTIONS':
                return respond(start_response, 204, headers)
            if request.sid is None:
                return self._handshake(request, start_response, headers)
            session = self._find(request)
            if request.transport == 'websocket':
                request.require_upgrade()
                return websocket.upgrade(session, request, start_response)
            if request.method == 'GET':
                body = polling.get(session, request, self.options, headers)
            elif request.method == 'POST':
                body = polling.post(session, request, self.options, headers)
            else:
                raise BadRequest(f'method {request.method} on a session')
            return respond(start_response, 200, headers, body)
        except RequestError as exc:
            self._rejects.rejected(type(exc).__name__, exc.detail)
            if request.raw_method == 'POST':
                request.adapter.abandon_body()
            if request.adapter.upgraded:
                reason = exc.message if isinstance(exc.message, str) else json.dumps(exc.message)
                closed = websocket.refuse_after_upgrade(request, start_response, reason)
                if closed is not None:
                    return closed
            return render_error(start_response, exc, headers)

    def _find(self, request: Request) -> Session:
        session = self._sessions.get(request.sid)  # type: ignore[arg-type]
        if session is None or session.ended:
            self._several.unknown_sid(request.sid)  # type: ignore[arg-type]
            raise UnknownSid('no such session')
        if session.state is State.CLOSING and not (
                request.method == 'GET' and request.transport == session.transport == 'polling'):
            raise UnknownSid('session has ended')
        if request.transport == 'polling' and session.transport != 'polling':
            raise BadRequest('polling request for a WebSocket session')
        return session

    def _handshake(self, request: Request, start_response: StartResponse,
                   headers: Headers) -> Iterable[bytes]:
        if request.method != 'GET':
            raise BadHandshakeMethod(f'handshake with {request.method}')
        is_websocket = request.transport == 'websocket'
        if is_websocket:
            request.require_upgrade()
        if self._shutting_down:
            raise ServiceUnavailable('shutting down')
        cookie = None
        if self.options.cookie is not None and not is_websocket:
            # before the session exists: a cookie callable that fails leaves nothing open
            try:
                cookie = cookie_parts(self.options.cookie)
            except Exception as exc:
                logger.error('the sid cookie could not be made: %r', exc)
                raise ServiceUnavailable(f'cookie could not be made: {exc!r}') from None
        session = self._open(request)
        if is_websocket:
            return websocket.open_session(session, request, start_response)
        if cookie is not None:
            name, attributes = cookie
            headers.append(('Set-Cookie', f'{name}={session.sid}{attributes}'))
        body = polling.get(session, request, self.options, headers)
        return respond(start_response, 200, headers, body)

    def _open(self, request: Request) -> Session:
        """Create a session and ask the application; raises ``Forbidden`` if refused."""
        backend = self.backend
        options = self.options
        transport = polling.PollingTransport if request.transport == 'polling' else _unconnected
        session = Session(self.generate_id(), transport, backend, options,
                          on_message=self._call_message, on_close=self._call_disconnect,
                          on_finished=self._sessions.remove,
                          client=request.client_address(options.trusted_proxies))
        # limits come before the application is asked: they exist to shed load
        limited = self._sessions.add(session, options.max_sessions,
                                     options.max_sessions_per_client)
        if limited is Refusal.TOTAL:
            raise ServiceUnavailable(f'{options.max_sessions} sessions open')
        if limited is Refusal.CLIENT:
            raise TooManyRequests(
                f'{options.max_sessions_per_client} sessions from {session.client}')
        self._reachable[session.sid] = session
        try:
            refusal = self._call_connect(session.sid, request.environ)
        except BaseException:
            self._reachable.pop(session.sid, None)
            self._sessions.remove(session)  # the application never saw it start
            raise
        if refusal is not None:
            self._reachable.pop(session.sid, None)
            self._sessions.remove(session)
            raise Forbidden(f'connect handler refused: {refusal!r}', message=refusal)
        try:
            upgrades = (['websocket'] if request.transport == 'polling'
                        and self._can_upgrade(request.adapter) else [])
            session.set_open_packet(json.dumps({
                'sid': session.sid,
                'upgrades': upgrades,
                'pingInterval': self.options.ping_interval_ms,
                'pingTimeout': self.options.ping_timeout_ms,
                'maxPayload': self.options.max_http_buffer_size,
            }, separators=(',', ':')))
            session.start()
        except Exception as exc:
            # accepted by the application but not running: end it as any
            # session ends (unregistered, disconnect handler called)
            logger.error('%s could not be started: %r', session.sid, exc)
            session.close(Reason.TRANSPORT_ERROR, farewell=False)
            raise ServiceUnavailable(f'session could not be started: {exc!r}') from None
        logger.info('%s opened over %s', session.sid, request.transport)
        return session

    def _can_upgrade(self, adapter: ServerAdapter) -> bool:
        if not self.options.allow_upgrades or 'websocket' not in self.options.transports:
            return False
        if self._websocket_ok is None:
            self._websocket_ok = adapter.describe().can_websocket
        return self._websocket_ok

    def _diagnose(self, adapter: ServerAdapter) -> None:
        """Say once, at the first request, what this server can serve and why not."""
        self._diagnosed = True
        self._several.first_request()
        try:
            info = adapter.describe()
        except Exception:
            logger.exception('could not inspect the WSGI server')
            return
        self._websocket_ok = info.can_websocket
        log = _startup_logger()
        if not info.concurrent and self.backend.name == 'threading':
            log.error(
                '%s serves one request at a time: while a long-poll waits (up to the ping '
                'interval) every other request waits too, ordinary routes of the '
                'application included, and sessions time out. Run a threaded or gevent '
                'server, e.g. gunicorn -k gevent or gunicorn -k gthread --threads 100.',
                info.name)
        transports = [t for t in self.options.transports
                      if t != 'websocket' or info.can_websocket]
        log.info('serving %s on %s (%s)', ', '.join(transports) or 'nothing',
                 info.name, self.backend.name)
        if 'websocket' in self.options.transports and not info.can_websocket:
            log.warning('WebSocket is not available on %s: %s', info.name, info.why_not)

    # -- calling the application ------------------------------------------------

    def _call_connect(self, sid: str, environ: dict[str, Any]) -> Any:
        """None when accepted, else the refusal message for the client.

        As in python-engineio: None or True accepts, any other value refuses
        and becomes the message (empty values and exceptions give the default).
        """
        handler = self.handlers.get('connect')
        if handler is None:
            return None
        try:
            result = handler(sid, environ)
        except ConnectionRefusedError as exc:
            return _refusal_message(sid, exc.reason)
        except Exception:
            logger.exception('%s connect handler failed; refusing the connection', sid)
            return REFUSED
        if result is None or result is True:
            return None
        if isinstance(result, tuple) and result and result[0] is False:
            return _refusal_message(sid, result[1] if len(result) > 1 else None)
        return _refusal_message(sid, result)

    def _call_message(self, session: Session, data: str | bytes) -> None:
        handler = self.handlers.get('message')
        if handler is None:
            return
        try:
            handler(session.sid, data)
        except Exception:
            logger.exception('%s message handler failed', session.sid)

    def _call_disconnect(self, session: Session, reason: str) -> None:
        handler = self.handlers.get('disconnect')
        try:
            if handler is None:
                return
            if self._disconnect_takes_reason:
                handler(session.sid, reason)
            else:
                handler(session.sid)
        except Exception:
            logger.exception('%s disconnect handler failed', session.sid)
        finally:
            # the session's data and transport are readable until now, for every reason
            self._reachable.pop(session.sid, None)

    def _session_or_key_error(self, sid: str) -> Session:
        session = self._reachable.get(sid)
        if session is None:
            raise KeyError(sid)
        return session


def _unconnected(session: Session) -> Unconnected:
    return Unconnected()


def _refusal_message(sid: str, value: Any) -> Any:
    """What a refused client is told: the application's value, or the default."""
    if not value:
        return REFUSED
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        logger.warning('%s connect handler refused with a %s, which JSON cannot carry; '
                       'sending the default message', sid, type(value).__name__)
        return REFUSED
    return value


def _startup_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    return logs.visible(logger)


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
