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
    EIO_LOG_LEVEL             optional: configure logging to stderr at this level

Text messages that are commands are not echoed:

    __disconnect      the server disconnects the sender from inside the handler
    __block <secs>    the handler sleeps <secs>, then sends 'unblocked'
    __send <n>        the server sends n messages 'm0' .. 'm<n-1>'
    __raise           the handler raises (the session must live on)

A command with missing or bad arguments is echoed like any other message.
Every received message is also written to stderr (shortened), so that tests
can see in the server log that a message reached the application even when
its session is already gone.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import engineio_wsgi


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
    ):
        seconds = _env_float(env_name)
        if seconds is not None:
            options[option] = seconds
    size = _env_int('EIO_MAX_HTTP_BUFFER_SIZE')
    if size is not None:
        options['max_http_buffer_size'] = size
    cors = os.environ.get('EIO_CORS')
    if cors is not None:
        options['cors_allowed_origins'] = '*' if cors.strip() == '*' else _env_list('EIO_CORS')
    transports = _env_list('EIO_TRANSPORTS')
    if transports is not None:
        options['transports'] = transports
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
def on_connect(sid: str, environ: dict[str, Any]) -> None:
    _note('connect', sid)


@eio.on('disconnect')
def on_disconnect(sid: str, reason: Any = None) -> None:
    _note('disconnect', sid, reason)


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
        if command == '__send':
            count = _number(arg, int)
            if count is not None and count <= 100_000:
                for i in range(count):
                    eio.send(sid, f'm{i}')
                return
    eio.send(sid, data)


def fallback(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b'fallback'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]


app = engineio_wsgi.WSGIApp(eio, fallback)
