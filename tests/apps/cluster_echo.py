"""Echo application for the tests of several processes (``Server(cluster=...)``).

Run by gunicorn as ``tests.apps.cluster_echo:app``. Configured from the
environment, read at import time:

    EIO_CLUSTER          the cluster= value (a redis:// URL), mandatory
    EIO_PING_INTERVAL    optional: seconds (float)
    EIO_PING_TIMEOUT     optional: seconds (float)
    EIO_HTTP_BODY_TIMEOUT optional: seconds (float)
    EIO_MAX_WORKER_THREADS optional: the max_worker_threads option (int)
    EIO_LOG_LEVEL        optional: configure logging to stderr at this level

Messages: every message is sent back to its sender, except the text
messages ``close`` (the server disconnects the session) and ``whoami`` (the
reply is the node id of the process that owns the session). ``block:<s>``
is sent back after its handler held its worker for ``<s>`` seconds.

Routes outside ``/engine.io/``: ``/__node`` answers this process's node id,
``/__sessions`` the number of sessions it owns (both text/plain),
``/__session?sid=<sid>`` JSON ``{"exists", "transport", "get_waiting",
"post_active", "queued"}`` for a session this process owns (so that tests wait for a state),
``/__send?sid=<sid>&data=<text>`` and ``/__disconnect?sid=<sid>`` call
``eio.send`` / ``eio.disconnect`` in this process (for any session of the
cluster) and answer ``done``, or ``unavailable`` when Redis cannot be reached.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import engineio_wsgi
from engineio_wsgi import sids
from engineio_wsgi.cluster import ClusterUnavailable

_level = os.environ.get('EIO_LOG_LEVEL', '').strip().upper()
if _level:
    logging.basicConfig(level=getattr(logging, _level, logging.INFO), stream=sys.stderr,
                        format='%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s')


def _options() -> dict[str, Any]:
    options: dict[str, Any] = {'cluster': os.environ['EIO_CLUSTER'], 'async_mode': None}
    for env_name, option in (('EIO_PING_INTERVAL', 'ping_interval'),
                             ('EIO_PING_TIMEOUT', 'ping_timeout'),
                             ('EIO_HTTP_BODY_TIMEOUT', 'http_body_timeout')):
        value = os.environ.get(env_name, '').strip()
        if value:
            options[option] = float(value)
    workers = os.environ.get('EIO_MAX_WORKER_THREADS', '').strip()
    if workers:
        options['max_worker_threads'] = int(workers)
    return options


eio = engineio_wsgi.Server(**_options())


@eio.on('message')
def on_message(sid: str, data: str | bytes) -> None:
    if data == 'close':
        eio.disconnect(sid)
    elif data == 'whoami':
        eio.send(sid, sids.process_tag())
    elif isinstance(data, str) and data.startswith('block:'):
        # the scenario: a handler that holds its worker for this long
        eio.sleep(float(data[len('block:'):]))
        eio.send(sid, data)
    else:
        eio.send(sid, data)


def _query(environ: dict[str, Any], name: str) -> str:
    return parse_qs(environ.get('QUERY_STRING', '')).get(name, [''])[0]


def _session_state(sid: str) -> dict[str, Any]:
    """What this process holds for a session (internal attributes: test app only)."""
    session = eio._sessions.get(sid)
    if session is None:
        return {'exists': False, 'transport': None, 'get_waiting': None, 'post_active': None,
                'queued': None}
    polling = session.polling
    return {'exists': True, 'transport': session.transport,
            'get_waiting': polling is not None and polling.get_waiting,
            'post_active': polling is not None and polling.post_active,
            'queued': len(session.outbox)}


def fallback(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get('PATH_INFO')
    if path == '/__node':
        body = sids.process_tag().encode('ascii')
    elif path == '/__sessions':
        body = str(eio.session_count()).encode('ascii')
    elif path == '/__session':
        sid = _query(environ, 'sid')
        body = json.dumps(_session_state(sid)).encode('ascii')
    elif path in ('/__send', '/__disconnect'):
        try:
            if path == '/__send':
                eio.send(_query(environ, 'sid'), _query(environ, 'data'))
            else:
                eio.disconnect(_query(environ, 'sid'))
            body = b'done'
        except ClusterUnavailable:
            body = b'unavailable'
    else:
        start_response('404 Not Found', [('Content-Type', 'text/plain'),
                                         ('Content-Length', '9')])
        return [b'not found']
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]


app = engineio_wsgi.WSGIApp(eio, fallback)
