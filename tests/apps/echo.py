"""Echo application for the integration tests.

Module-level ``app`` is a WSGI application: Engine.IO traffic goes to an
engineio_wsgi ``Server`` that echoes every message back to its sender, any
other path gets ``200 fallback`` (text/plain).

The server is configured from environment variables read at import time:

    EIO_ASYNC_MODE            threading | gevent (unset: auto)
    EIO_PING_INTERVAL         seconds (float)
    EIO_PING_TIMEOUT          seconds (float)
    EIO_UPGRADE_TIMEOUT       seconds (float)
    EIO_MAX_HTTP_BUFFER_SIZE  bytes (int)
    EIO_CORS                  '*' or a comma separated list of origins
    EIO_TRANSPORTS            comma separated list (polling, websocket)
    EIO_HTTP_BODY_TIMEOUT     optional: seconds a POST body may take to arrive
    EIO_MAX_QUEUED_PACKETS    optional: packets queued per session (int)
    EIO_MAX_SESSIONS          optional: most sessions at once (int)
    EIO_MAX_SESSIONS_PER_CLIENT optional: most sessions per client address (int)
    EIO_MAX_WORKER_THREADS    optional: threads running handlers at once (int)
    EIO_MESSAGE_RATE_LIMIT    optional: 'messages,seconds' (e.g. '20,1')
    EIO_TRUSTED_PROXIES       optional: comma separated proxy addresses
    EIO_SHUTDOWN_TIMEOUT      optional: seconds (float)
    EIO_LOG_LEVEL             optional: configure logging to stderr at this level
    EIO_LOGGER                optional: '1' passes logger=True (the packet trace)
    EIO_CONNECTION_ERROR      optional: '1' registers a connection_error handler,
                              which writes ``echo: connection_error <code>
                              <message as JSON> <query string>`` for every
                              refused request, and raises when the query has
                              ``fail_handler``; the connect handler then
                              refuses a handshake whose query has
                              ``refuse=<reason>`` with that reason

Text messages that are commands are not echoed:

    __disconnect      the server disconnects the sender from inside the handler
    __block <secs>    the handler sleeps <secs>, then sends 'unblocked'
    __send <n>        the server sends n messages 'm0' .. 'm<n-1>'
    __sendseq <n> <size>
                      the server sends n messages of <size> bytes, each starting
                      with its number ('000000 xxx...'), then 'sendseq done'
    __raise           the handler raises (the session must live on)
    __sendto <n> <size> <sid>[,<sid>...]
                      the handler sends n messages of <size> bytes ('b' * size)
                      to each listed session, one session after the other,
                      then 'sendto done' to the sender

A request for ``/__stats`` (outside the Engine.IO path) answers JSON
``{"sessions", "threads", "greenlets", "rss_kb", "fds", "thread_names", "lock_checks"}``:
open sessions, live threads (``threading.active_count()``), live greenlets when
gevent is loaded (else 0), the resident memory of the process in kB, its open
descriptors (-1 where /proc/self/fd cannot be read), the
live threads counted by name with trailing digits removed, and whether the
server asserts its lock rules (``engineio_wsgi.locks.CHECK``).

A request for ``/__session?sid=<sid>`` answers JSON ``{"exists", "state",
"transport", "upgrading", "get_waiting", "post_active", "queued", "unsent"}``:
what the server holds for that session right now (``unsent``: frames its
WebSocket still holds, that the socket did not take yet), so that tests wait for a state
instead of sleeping (``exists`` false and the rest null for an unknown sid).

A command with missing or bad arguments is echoed like any other message.
Every received message is also written to stderr (shortened), so that tests
can see in the server log that a message reached the application even when
its session is already gone.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import engineio_wsgi
from engineio_wsgi import locks


def _env_float(name: str) -> float | None:
    value = os.environ.get(name, '').strip()
    return float(value) if value else None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, '').strip()
    return int(value) if value else None


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(',') if item.strip()]


def server_options() -> dict[str, Any]:
    """The ``Server`` keyword arguments the environment asks for."""
    options: dict[str, Any] = {}
    mode = os.environ.get('EIO_ASYNC_MODE', '').strip()
    if mode:
        options['async_mode'] = mode
    for env_name, option in (
        ('EIO_PING_INTERVAL', 'ping_interval'),
        ('EIO_PING_TIMEOUT', 'ping_timeout'),
        ('EIO_UPGRADE_TIMEOUT', 'upgrade_timeout'),
        ('EIO_HTTP_BODY_TIMEOUT', 'http_body_timeout'),
        ('EIO_SHUTDOWN_TIMEOUT', 'shutdown_timeout'),
    ):
        seconds = _env_float(env_name)
        if seconds is not None:
            options[option] = seconds
    for env_name, option in (
        ('EIO_MAX_HTTP_BUFFER_SIZE', 'max_http_buffer_size'),
        ('EIO_MAX_QUEUED_PACKETS', 'max_queued_packets'),
        ('EIO_MAX_SESSIONS', 'max_sessions'),
        ('EIO_MAX_SESSIONS_PER_CLIENT', 'max_sessions_per_client'),
        ('EIO_MAX_WORKER_THREADS', 'max_worker_threads'),
    ):
        number = _env_int(env_name)
        if number is not None:
            options[option] = number
    rate = _env_list('EIO_MESSAGE_RATE_LIMIT')
    if rate:
        options['message_rate_limit'] = (int(rate[0]), float(rate[1]))
    proxies = _env_list('EIO_TRUSTED_PROXIES')
    if proxies is not None:
        options['trusted_proxies'] = proxies
    cors = os.environ.get('EIO_CORS')
    if cors is not None:
        options['cors_allowed_origins'] = '*' if cors.strip() == '*' else _env_list('EIO_CORS')
    transports = _env_list('EIO_TRANSPORTS')
    if transports is not None:
        options['transports'] = transports
    if os.environ.get('EIO_LOGGER', '').strip() == '1':
        options['logger'] = True
    return options


_log_level = os.environ.get('EIO_LOG_LEVEL', '').strip().upper()
if _log_level:
    logging.basicConfig(
        level=getattr(logging, _log_level, logging.INFO),
        stream=sys.stderr,
        format='%(asctime)s %(levelname)s %(name)s: %(message)s',
    )

eio = engineio_wsgi.Server(**server_options())


def _note(*parts: object) -> None:
    # one write per line, so that lines of other threads never land inside it
    sys.stderr.write(' '.join(['echo:', *map(str, parts)]) + '\n')
    sys.stderr.flush()


def _short(data: str | bytes) -> str:
    if isinstance(data, bytes):
        return f'<{len(data)} bytes>'
    return repr(data if len(data) <= 80 else data[:80] + '...')


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    """``kind(text)`` if it is a usable non-negative number, else None."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


@eio.on('connect')
def on_connect(sid: str, environ: dict[str, Any]) -> Any:
    _note('connect', sid)
    if _REFUSALS:
        refusal = parse_qs(environ.get('QUERY_STRING', '')).get('refuse')
        if refusal:
            return refusal[0]
    return None


_REFUSALS = os.environ.get('EIO_CONNECTION_ERROR', '').strip() == '1'


if _REFUSALS:
    @eio.on('connection_error')
    def on_connection_error(environ: dict[str, Any], code: int, message: Any) -> None:
        query = environ.get('QUERY_STRING', '')
        _note('connection_error', code, json.dumps(message), query)
        if 'fail_handler' in query:
            raise RuntimeError('the connection_error handler fails on purpose')


@eio.on('disconnect')
def on_disconnect(sid: str, reason: Any = None) -> None:
    _note('disconnect', sid, reason)


def _send_to(sender: str, count: int, size: int, targets: list[str]) -> None:
    data = 'b' * size
    for sid in targets:
        for _ in range(count):
            eio.send(sid, data)
    eio.send(sender, 'sendto done')


@eio.on('message')
def on_message(sid: str, data: str | bytes) -> None:
    _note('message', sid, _short(data))
    if isinstance(data, str) and data.startswith('__'):
        command, _, arg = data.partition(' ')
        arg = arg.strip()
        if command == '__disconnect' and not arg:
            eio.disconnect(sid)
            return
        if command == '__raise' and not arg:
            raise RuntimeError('__raise: the echo app raises on purpose')
        if command == '__block':
            seconds = _number(arg, float)
            if seconds is not None and seconds <= 600:
                eio.sleep(seconds)
                eio.send(sid, 'unblocked')
                return
        if command == '__sendto':
            parts = arg.split()
            if len(parts) == 3:
                count, size = _number(parts[0], int), _number(parts[1], int)
                if count is not None and size is not None and count * size <= 100_000_000:
                    _send_to(sid, count, size, parts[2].split(','))
                    return
        if command == '__sendseq':
            parts = arg.split()
            if len(parts) == 2:
                count, size = _number(parts[0], int), _number(parts[1], int)
                if count is not None and size is not None and count * size <= 100_000_000:
                    pad = 'x' * max(0, size - 7)
                    for i in range(count):
                        eio.send(sid, f'{i:06d} {pad}')
                    eio.send(sid, 'sendseq done')
                    return
        if command == '__send':
            count = _number(arg, int)
            if count is not None and count <= 100_000:
                for i in range(count):
                    eio.send(sid, f'm{i}')
                return
    eio.send(sid, data)


def _rss_kb() -> int:
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _fds() -> int:
    try:
        return len(os.listdir('/proc/self/fd'))
    except OSError:
        return -1


def _greenlets() -> int:
    if 'gevent' not in sys.modules:
        return 0
    import greenlet
    return sum(1 for obj in gc.get_objects()
               if isinstance(obj, greenlet.greenlet) and not obj.dead)


def _thread_names() -> dict[str, int]:
    names: dict[str, int] = {}
    for thread in threading.enumerate():
        name = thread.name.rstrip('0123456789').rstrip('-_ ') or 'unnamed'
        names[name] = names.get(name, 0) + 1
    return names


def stats() -> dict[str, Any]:
    return {'sessions': eio.session_count(), 'threads': threading.active_count(),
            'greenlets': _greenlets(), 'rss_kb': _rss_kb(), 'fds': _fds(), 'thread_names': _thread_names(),
            'lock_checks': locks.CHECK}


def session_state(sid: str) -> dict[str, Any]:
    """The server's view of one session (internal attributes: test app only)."""
    session = eio._sessions.get(sid)
    if session is None:
        return {'exists': False, 'state': None, 'transport': None, 'upgrading': None,
                'get_waiting': None, 'post_active': None, 'queued': None, 'unsent': None}
    polling = session.polling
    conn = getattr(session.channel, '_conn', None)
    return {'exists': True, 'state': _STATE_NAMES[session.state.name],
            'transport': session.transport, 'upgrading': session.upgrading,
            'get_waiting': polling is not None and polling.get_waiting,
            'post_active': polling is not None and polling.post_active,
            'queued': len(session.outbox),
            'unsent': None if conn is None else len(conn._outbox)}


#: the three states this route reports: a draining session (a parse error, its
#: messages still being handled) is open, a released one closed
_STATE_NAMES = {'OPEN': 'open', 'DRAINING': 'open', 'CLOSING': 'closing', 'CLOSED': 'closed',
                'FINISHED': 'closed'}


def fallback(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get('PATH_INFO') == '/__stats':
        body = json.dumps(stats()).encode()
        content_type = 'application/json'
    elif environ.get('PATH_INFO') == '/__session':
        sid = parse_qs(environ.get('QUERY_STRING', '')).get('sid', [''])[0]
        body = json.dumps(session_state(sid)).encode()
        content_type = 'application/json'
    else:
        body = b'fallback'
        content_type = 'text/plain'
    start_response('200 OK', [('Content-Type', content_type), ('Content-Length', str(len(body)))])
    return [body]


app = engineio_wsgi.WSGIApp(eio, fallback)
