"""The request pipeline: from one WSGI request to a session's transport.

``RequestPipeline.handle`` is where a request's environ is read (into a
:class:`~engineio_wsgi.request.Request` and its server adapter); below it
nothing sees the environ. It checks the request (CORS, checks 1-4 of
PROTOCOL.md), then opens a session (handshake) or finds the session the
request is for and hands it to the polling or WebSocket transport. Every
refusal becomes the status and code of PROTOCOL.md, counted in the reject log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import logs, trace
from . import polling_transport as polling
from . import websocket_transport as websocket
from .backends import Backend, mode_mismatch
from .cors import CorsPolicy
from .errors import (
    BadHandshakeMethod,
    BadRequest,
    Forbidden,
    RequestError,
    ServerMisconfigured,
    ServiceUnavailable,
    TooManyRequests,
    UnknownSid,
)
from .handlers import AppHandlers
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

if TYPE_CHECKING:
    from .cluster.link import ClusterLink

logger = logging.getLogger(__name__)


def open_packet_rest(options: Options, can_upgrade: bool) -> str:
    """The open packet's JSON from the comma after the sid to the end."""
    rest = json.dumps({
        'upgrades': ['websocket'] if can_upgrade else [],
        'pingInterval': options.ping_interval_ms,
        'pingTimeout': options.ping_timeout_ms,
        'maxPayload': options.max_http_buffer_size,
    }, separators=(',', ':'))
    return ',' + rest[1:]


class RequestPipeline:
    """Serves the Engine.IO requests of one ``Server``.

    ``backend_for(sock)`` gives the concurrency backend, deciding it from the
    first request's socket when the application did not choose one.
    """

    def __init__(self, options: Options, sessions: SessionRegistry, handlers: AppHandlers,
                 backend_for: Callable[[Any], Backend], new_sid: Callable[[], str]) -> None:
        self.options = options
        self.sessions = sessions
        self.handlers = handlers
        # made once: a bound method read per session would be one object more per session
        self._on_message = handlers.message
        self._on_close = handlers.disconnect
        self._on_finished = sessions.remove
        self._backend_for = backend_for
        self._new_sid = new_sid
        #: set by ``Server.shutdown``: new handshakes are refused from then on
        self.shutting_down = False
        self._cors = CorsPolicy(options.cors_allowed_origins, options.cors_credentials)
        self._rejects = RejectLog()
        self._several = SeveralProcessesCheck(options.transports, options.ping_interval,
                                              options.ping_timeout)
        self._diagnosed = False
        #: why this server cannot serve as configured (found at the first request)
        self._misconfigured: str | None = None
        self._websocket_ok: bool | None = None
        #: the open packet's JSON after the sid, with and without the upgrade
        self._open_rest = {can: open_packet_rest(options, can) for can in (True, False)}
        #: ``Server(cluster=...)``: requests for other processes' sessions go there
        self.cluster: ClusterLink | None = None

    def join_cluster(self, link: ClusterLink) -> None:
        self.cluster = link
        self._several.enabled = False   # sessions are shared: nothing to warn about

    def handle(self, environ: dict[str, Any],
               start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point for Engine.IO requests."""
        # the one place the environ is read; below this, the Request and its adapter
        request = Request(environ)
        self._backend_for(request.adapter.sock)
        cluster = self.cluster
        if cluster is not None:
            cluster.start()   # after fork: this process's inbox
        if not self._diagnosed:
            self._diagnose(request.adapter)
        headers: Headers = []
        # False for an Origin check 4 refuses as well as for one not allowed:
        # neither is ever echoed in a response header
        allowed = self._cors.allows(request)
        try:
            if self._misconfigured is not None:
                raise ServerMisconfigured(self._misconfigured)
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
            if cluster is not None and self.sessions.get(request.sid) is None:
                owner = cluster.owner_elsewhere(request.sid)
                if owner is not None:
                    return cluster.serve(request, start_response, headers, owner)
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
            self.handlers.connection_error(request.environ, exc.code, exc.message)
            if request.raw_method == 'POST':
                request.adapter.abandon_body()
            if request.adapter.upgraded:
                reason = exc.message if isinstance(exc.message, str) else json.dumps(exc.message)
                closed = websocket.refuse_after_upgrade(request, start_response, reason)
                if closed is not None:
                    return closed
            return render_error(start_response, exc, headers)

    def _find(self, request: Request) -> Session:
        session = self.sessions.get(request.sid)  # type: ignore[arg-type]
        if session is None or session.ended:
            self._several.unknown_sid(request.sid)  # type: ignore[arg-type]
            raise UnknownSid('no such session')
        if not session.admits(request.method == 'GET' and request.transport == 'polling'):
            raise UnknownSid('session has ended')
        if request.transport == 'polling' and session.transport != 'polling':
            raise BadRequest('polling request for a WebSocket session')
        return session

    # -- opening a session ----------------------------------------------------------

    def _handshake(self, request: Request, start_response: StartResponse,
                   headers: Headers) -> Iterable[bytes]:
        if request.method != 'GET':
            raise BadHandshakeMethod(f'handshake with {request.method}')
        is_websocket = request.transport == 'websocket'
        if is_websocket:
            request.require_upgrade()
        if self.shutting_down:
            raise ServiceUnavailable('shutting down')
        if self.cluster is not None and not is_websocket:
            self.cluster.admit_polling()
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
        options = self.options
        handlers = self.handlers
        transport = polling.PollingTransport if request.transport == 'polling' else _unconnected
        session = Session(self._new_sid(), transport, self._backend_for(None), options,
                          on_message=self._on_message, on_close=self._on_close,
                          on_finished=self._on_finished,
                          client=request.client_address(options.trusted_proxies))
        # limits come before the application is asked: they exist to shed load
        limited = self.sessions.add(session, options.max_sessions,
                                    options.max_sessions_per_client)
        if limited is Refusal.TOTAL:
            raise ServiceUnavailable(f'{options.max_sessions} sessions open')
        if limited is Refusal.CLIENT:
            raise TooManyRequests(
                f'{options.max_sessions_per_client} sessions from {session.client}')
        handlers.reachable[session.sid] = session
        try:
            refusal = handlers.connect(session.sid, request.environ)
        except BaseException:
            handlers.reachable.pop(session.sid, None)
            self.sessions.remove(session)  # the application never saw it start
            raise
        if refusal is not None:
            handlers.reachable.pop(session.sid, None)
            self.sessions.remove(session)
            raise Forbidden(f'connect handler refused: {refusal!r}', message=refusal)
        try:
            can = request.transport == 'polling' and self._can_upgrade(request.adapter)
            # only the sid differs between handshakes: the rest is encoded once
            opening = '{"sid":' + json.dumps(session.sid) + self._open_rest[can]
            session.set_open_packet(opening)
            if options.trace:
                trace.sending(session.sid, request.transport, Packet(PacketType.OPEN, opening))
            session.start()
        except Exception as exc:
            # accepted by the application but not running: end it as any
            # session ends (unregistered, disconnect handler called)
            logger.error('%s could not be started: %r', session.sid, exc)
            session.close(Reason.TRANSPORT_ERROR, farewell=False)
            raise ServiceUnavailable(f'session could not be started: {exc!r}') from None
        logger.info('%s opened over %s', session.sid, request.transport)
        return session

    # -- what this WSGI server can do -------------------------------------------------

    def _can_upgrade(self, adapter: ServerAdapter) -> bool:
        if not self.options.allow_upgrades or 'websocket' not in self.options.transports:
            return False
        if self._websocket_ok is None:
            self._websocket_ok = adapter.describe().can_websocket
        return self._websocket_ok

    def _diagnose(self, adapter: ServerAdapter) -> None:
        """Say once, at the first request, what this server can serve and why not."""
        self._diagnosed = True
        logs.route_to_server_log()
        self._several.first_request()
        try:
            info = adapter.describe()
        except Exception:
            logger.exception('could not inspect the WSGI server')
            return
        self._websocket_ok = info.can_websocket
        log = logs.visible(logger)
        backend = self._backend_for(None).name
        wrong = mode_mismatch(backend, adapter.sock, info.name)
        if wrong is not None:
            fatal, text = wrong
            if fatal:
                log.error('%s', text)
                self._misconfigured = text
                return
            log.warning('%s', text)
        if not info.concurrent and backend == 'threading':
            log.error(
                '%s serves one request at a time: while a long-poll waits (up to the ping '
                'interval) every other request waits too, ordinary routes of the '
                'application included, and sessions time out. Run a threaded or gevent '
                'server, e.g. gunicorn -k gevent or gunicorn -k gthread --threads 100.',
                info.name)
        transports = [t for t in self.options.transports
                      if t != 'websocket' or info.can_websocket]
        log.info('serving %s on %s (%s)', ', '.join(transports) or 'nothing', info.name, backend)
        if 'websocket' in self.options.transports and not info.can_websocket:
            log.warning('WebSocket is not available on %s: %s', info.name, info.why_not)


def _unconnected(session: Session) -> Unconnected:
    return Unconnected()
