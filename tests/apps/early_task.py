"""An application that starts a background task at import time, as many do.

``/__mode`` answers JSON ``{"async_mode", "task"}``: the mode the server
decided and how the task ran ('greenlet' or 'thread'; null before it ran).
Messages are echoed.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

import engineio_wsgi

eio = engineio_wsgi.Server(ping_interval=1, ping_timeout=1)
ran: dict[str, Any] = {'task': None}
_ran = threading.Event()


def _task() -> None:
    gevent = sys.modules.get('gevent')
    if gevent is not None and isinstance(gevent.getcurrent(), gevent.Greenlet):
        ran['task'] = 'greenlet'
    else:
        ran['task'] = 'thread'


task = eio.start_background_task(_task)


@eio.on('message')
def on_message(sid: str, data: str | bytes) -> None:
    eio.send(sid, data)


def fallback(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get('PATH_INFO') == '/__mode':
        task.join(5)
        body = json.dumps({'async_mode': eio.async_mode, 'task': ran['task']}).encode()
    else:
        body = b'{}'
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


app = engineio_wsgi.WSGIApp(eio, fallback)
