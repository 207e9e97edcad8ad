"""The Engine.IO server: request pipeline, sessions, and the application's API.

This is the only module that calls application code (the event handlers).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import secrets
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import polling, servers, websocket
from .backends import Backend, Task, create_backend
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
from .options import Options
from .packets import Packet, PacketType
from .registry import SessionRegistry
from .rejectlog import RejectLog
from .request import Request, client_address, parse_request
from .response import Headers, StartResponse, cookie_header, render_error, respond
from .session import Reason, Session, State

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]
EVENTS = ('connect', 'message', 'disconnect')

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
        self.handlers: dict[str, Handler] = {}
        self._disconnect_takes_reason = True
        self._sessions = SessionRegistry()
        self._backend: Backend | None = None
        self._cors = CorsPolicy(self.options.cors_allowed_origins, self.options.cors_credentials)
        self._rejects = RejectLog()
        self._diagnosed = False
        self._websocket_ok: bool | None = None
        self._shutting_down = False
        _servers.add(self)

    # -- configuration ----------------------------------------------------------

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = create_backend(self.options.async_mode)
            logger.info('using %s', self._backend.name)
        return self._backend

    @property
    def async_mode(self) -> str:
        return self.backend.name

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register an event handler; usable as ``@eio.on('message')`` too."""
        if event not in EVENTS:
            raise ValueError(f'unknown event {event!r}; expected one of {EVENTS}')

        def register(fn: Handler) -> Handler:
            self.handlers[event] = fn
            if event == 'disconnect':
                self._disconnect_takes_reason = _positional_count(fn) >= 2
            return fn
        return register(handler) if handler is not None else register

    # -- the application's API --------------------------------------------------

    def send(self, sid: str, data: str | bytes) -> None:
        """Send a message; ignored (logged at DEBUG) when the session has ended."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, (str, bytes)):
            raise TypeError(f'message data must be str or bytes, not {type(data).__name__}')
        session = self._sessions.get(sid)
        if session is None or session.closed:
            logger.debug('%s send() to an ended session ignored', sid)
            return
        if isinstance(data, str):
            session.check_text(data)
        session.enqueue(Packet(PacketType.MESSAGE, data))

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

    def save_session(self, sid: str, data: dict[str, Any]) -> None:
        self._session_or_key_error(sid).user_data = data

    @contextlib.contextmanager
    def session(self, sid: str) -> Iterator[dict[str, Any]]:
        data = self.get_session(sid)
        yield data
        self.save_session(sid, data)

    def start_background_task(self, target: Callable[..., Any], *args: Any,
                              **kwargs: Any) -> Task:
        return self.backend.spawn(target, *args, **kwargs)

    def sleep(self, seconds: float = 0) -> None:
        self.backend.sleep(seconds)

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        return self.backend.queue(*args, **kwargs)

    def create_event(self) -> Any:
        return self.backend.event()

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
        return secrets.token_urlsafe(15)  # 120 random bits, 20 URL-safe characters

    def session_count(self) -> int:
        return len(self._sessions)

    # -- the request pipeline ---------------------------------------------------

    def handle_request(self, environ: dict[str, Any],
                       start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point for Engine.IO requests."""
        if not self._diagnosed:
            self._diagnose(environ)
        headers: Headers = []
        origin = environ.get('HTTP_ORIGIN')
        allowed = self._cors.allows(origin, environ)
        try:
            if origin is not None and allowed:
                # errors carry the CORS headers the request would have had
                headers = self._cors.headers(origin, environ,
                                             environ.get('REQUEST_METHOD') == 'OPTIONS')
            request = parse_request(environ, self.options.transports)
            if not allowed:
                raise Forbidden('origin not allowed')
            if request.method == 'OPTIONS':
                return respond(start_response, 204, headers)
            if request.sid is None:
                return self._handshake(request, start_response, headers)
            session = self._find(request)
            if request.transport == 'websocket':
                request.require_upgrade()
                return websocket.upgrade(self, session, request, start_response)
            if request.method == 'GET':
                body = polling.get(session, environ, self.options, headers)
            elif request.method == 'POST':
                body = polling.post(session, environ, self.options, headers)
            else:
                raise BadRequest(f'method {request.method} on a session')
            return respond(start_response, 200, headers, body)
        except RequestError as exc:
            self._rejects.rejected(type(exc).__name__, exc.detail)
            if environ.get('REQUEST_METHOD') == 'POST' and not environ.get(servers.BODY_READ):
                servers.abandon_body(environ)
            if 'wsgi.websocket' in environ:
                closed = websocket.refuse_after_upgrade(environ, start_response, exc.message)
                if closed is not None:
                    return closed
            return render_error(start_response, exc, headers)

    def _find(self, request: Request) -> Session:
        session = self._sessions.get(request.sid)  # type: ignore[arg-type]
        if session is None or session.state is State.CLOSED:
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
        session = self._open(request)
        if is_websocket:
            return websocket.open_session(self, session, request, start_response)
        if self.options.cookie is not None:
            headers.append(cookie_header(session.sid, self.options.cookie))
        body = polling.get(session, request.environ, self.options, headers)
        return respond(start_response, 200, headers, body)

    def _open(self, request: Request) -> Session:
        """Create a session and ask the application; raises ``Forbidden`` if refused."""
        backend = self.backend
        options = self.options
        session = Session(self.generate_id(), request.transport, backend, options,
                          on_message=self._call_message, on_close=self._call_disconnect,
                          on_finished=self._sessions.remove,
                          client=client_address(request.environ, options.trusted_proxies))
        # limits come before the application is asked: they exist to shed load
        limited = self._sessions.add(session, options.max_sessions,
                                     options.max_sessions_per_client)
        if limited == 'total':
            raise ServiceUnavailable(f'{options.max_sessions} sessions open')
        if limited == 'client':
            raise TooManyRequests(
                f'{options.max_sessions_per_client} sessions from {session.client}')
        refusal = self._call_connect(session.sid, request.environ)
        if refusal is not None:
            self._sessions.remove(session)
            raise Forbidden(f'connect handler refused: {refusal}', message=refusal)
        upgrades = (['websocket'] if request.transport == 'polling'
                    and self._can_upgrade(request.environ) else [])
        session.set_open_packet(json.dumps({
            'sid': session.sid,
            'upgrades': upgrades,
            'pingInterval': self.options.ping_interval_ms,
            'pingTimeout': self.options.ping_timeout_ms,
            'maxPayload': self.options.max_http_buffer_size,
        }, separators=(',', ':')))
        session.start()
        logger.info('%s opened over %s', session.sid, request.transport)
        return session

    def _can_upgrade(self, environ: dict[str, Any]) -> bool:
        if not self.options.allow_upgrades or 'websocket' not in self.options.transports:
            return False
        if self._websocket_ok is None:
            self._websocket_ok = servers.describe(environ).can_websocket
        return self._websocket_ok

    def _diagnose(self, environ: dict[str, Any]) -> None:
        """Say once, at the first request, what this server can serve and why not."""
        self._diagnosed = True
        try:
            info = servers.describe(environ)
        except Exception:
            logger.exception('could not inspect the WSGI server')
            return
        self._websocket_ok = info.can_websocket
        if not info.concurrent and self.backend.name == 'threading':
            logger.error(
                '%s serves one request at a time: a waiting long-poll blocks every other '
                'request and sessions time out. Run a threaded or gevent server, e.g. '
                'gunicorn -k gevent or gunicorn -k gthread --threads 100.', info.name)
        transports = [t for t in self.options.transports
                      if t != 'websocket' or info.can_websocket]
        logger.info('serving %s on %s (%s)', ', '.join(transports) or 'nothing',
                    info.name, self.backend.name)
        if 'websocket' in self.options.transports and not info.can_websocket:
            logger.warning('WebSocket is not available on %s: %s', info.name, info.why_not)

    # -- calling the application ------------------------------------------------

    def _call_connect(self, sid: str, environ: dict[str, Any]) -> str | None:
        """None when accepted, else the refusal message for the client."""
        handler = self.handlers.get('connect')
        if handler is None:
            return None
        try:
            result = handler(sid, environ)
        except ConnectionRefusedError as exc:
            return exc.reason or 'Connection refused'
        except Exception:
            logger.exception('%s connect handler failed; refusing the connection', sid)
            return 'Connection refused'
        if result is False:
            return 'Connection refused'
        if isinstance(result, tuple) and result and result[0] is False:
            return str(result[1]) if len(result) > 1 else 'Connection refused'
        return None

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
        if handler is None:
            return
        try:
            if self._disconnect_takes_reason:
                handler(session.sid, reason)
            else:
                handler(session.sid)
        except Exception:
            logger.exception('%s disconnect handler failed', session.sid)

    def _session_or_key_error(self, sid: str) -> Session:
        session = self._sessions.get(sid)
        if session is None or session.state is State.CLOSED:
            raise KeyError(sid)
        return session


def _positional_count(fn: Handler) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
