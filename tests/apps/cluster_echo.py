"""Echo application on a cluster of processes (``Server(cluster=...)``), for the
tests of several processes behind a balancer.

    EIO_CLUSTER=redis://127.0.0.1:6379/0 gunicorn -k gevent -w 3 tests.apps.cluster_echo:app

Engine.IO at ``/engine.io/``. Every text or binary message comes back to its
sender unchanged, except two texts:

    close     the server disconnects the sender (from inside the handler)
    whoami    the server sends back the node id of the session's owner (the
              process that runs the handler: this one)

Environment: ``EIO_CLUSTER`` (required: the ``cluster=`` value),
``EIO_PING_INTERVAL`` and ``EIO_PING_TIMEOUT`` (seconds, optional).

HTTP outside ``/engine.io/``: ``/__node`` answers this process's node id (text),
``/__sessions`` the number of sessions this process owns (text); anything
else ``200 fallback``.

Each connect, message and disconnect is written to stderr as one line
(``cluster_echo: connect SID NODE``, ``... message SID 'text'``,
``... disconnect SID REASON``) so that tests can tell which process ran a
handler.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import engineio_wsgi
from engineio_wsgi.cluster.node import node_id


def _options() -> dict[str, Any]:
    options: dict[str, Any] = {'cluster': os.environ['EIO_CLUSTER']}
    for env_name, option in (('EIO_PING_INTERVAL', 'ping_interval'),
                             ('EIO_PING_TIMEOUT', 'ping_timeout')):
        value = os.environ.get(env_name, '').strip()
        if value:
            options[option] = float(value)
    return options


eio = engineio_wsgi.Server(**_options())


def _note(*parts: object) -> None:
    # one write per line: lines of other threads never land inside it
    sys.stderr.write(' '.join(['cluster_echo:', *map(str, parts)]) + '\n')
    sys.stderr.flush()


def _short(data: str | bytes) -> str:
    if isinstance(data, bytes):
        return f'<{len(data)} bytes>'
    return repr(data if len(data) <= 80 else data[:80] + '...')


@eio.on('connect')
def on_connect(sid: str, environ: dict[str, Any]) -> None:
    _note('connect', sid, node_id())


@eio.on('disconnect')
def on_disconnect(sid: str, reason: Any = None) -> None:
    _note('disconnect', sid, reason)


@eio.on('message')
def on_message(sid: str, data: str | bytes) -> None:
    _note('message', sid, _short(data))
    if data == 'close':
        eio.disconnect(sid)
    elif data == 'whoami':
        eio.send(sid, node_id())
    else:
        eio.send(sid, data)


def fallback(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get('PATH_INFO')
    if path == '/__node':
        body = node_id().encode()
    elif path == '/__sessions':
        body = str(eio.session_count()).encode()
    else:
        body = b'fallback'
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body))),
                              ('Cache-Control', 'no-store')])
    return [body]


app = engineio_wsgi.WSGIApp(eio, fallback)
