"""The demo page of ``python -m engineio_wsgi`` served by several worker
processes that share sessions on Redis (``cluster=``), behind a balancer with
no stickiness. See README.md in this folder.

    REDIS_URL=redis://127.0.0.1:6379/0 gunicorn -k gevent -w 3 -b 127.0.0.1:8000 app:app

Environment:

    REDIS_URL   the Redis all workers share (default redis://127.0.0.1:6379/0)
    CLIENT_JS   the browser build of engine.io-client 6 to serve with the page,
                or "cdn" (default: node_modules/engine.io-client/dist/engine.io.min.js
                of the checkout this example sits in when present, else the CDN)
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import engineio_wsgi
from engineio_wsgi.__main__ import CLIENT_JS_URL, demo_page, find_client_js, render_page

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT_CLIENT_JS = os.path.join(HERE, '..', '..', 'node_modules', 'engine.io-client', 'dist',
                                  'engine.io.min.js')

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format='%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s')

eio = engineio_wsgi.Server(cluster=os.environ.get('REDIS_URL', 'redis://127.0.0.1:6379/0'))


@eio.on('message')
def echo(sid: str, data: str | bytes) -> None:
    # runs in the worker that owns the session, whichever worker the
    # request carrying the message reached
    eio.send(sid, data)


def _client_js() -> str | None:
    option = os.environ.get('CLIENT_JS')
    if option is None and os.path.isfile(CHECKOUT_CLIENT_JS):
        option = CHECKOUT_CLIENT_JS
    return find_client_js(option)


_js = _client_js()
_static: dict[str, Any] = {}
if _js:
    _static['/' + CLIENT_JS_URL] = {'filename': _js, 'content_type': 'application/javascript'}

app = engineio_wsgi.WSGIApp(eio, demo_page(render_page(_js, 'engine.io')), static_files=_static)
