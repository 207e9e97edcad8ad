"""One application on python-engineio or on engineio_wsgi, for the parity tests.

    EIO_PARITY_ENGINE   python-engineio | engineio_wsgi
    EIO_ASYNC_MODE      threading | gevent (python-engineio picks gevent whenever
                        it is installed, even under gunicorn's gthread worker)

The same options and handlers on both: origins ``['https://a.example', '*']``;
a sid cookie whose ``Max-Age`` is a callable counting handshakes (100, 101,
...); the demo page's folder under ``/demo``; the library's records sent to the
application's logger ``parity.app``, which writes ``APPLOG <message>`` lines to
stderr at INFO and does not propagate. The connect handler refuses with the
JSON value of the ``X-Refuse`` request header when there is one; messages are
echoed. No wrapped application: other URLs get 404.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
from typing import Any

ENGINE = os.environ.get('EIO_PARITY_ENGINE', 'engineio_wsgi')
DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    'engineio_wsgi', 'demo')

app_logger = logging.getLogger('parity.app')
app_logger.setLevel(logging.INFO)
app_logger.propagate = False
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(logging.Formatter('APPLOG %(message)s'))
app_logger.addHandler(_handler)

_ages = itertools.count(100)
options: dict[str, Any] = {
    'cors_allowed_origins': ['https://a.example', '*'],
    'cookie': {'name': 'io', 'path': '/', 'SameSite': 'Lax', 'HttpOnly': True,
               'Max-Age': lambda: str(next(_ages))},
    'logger': app_logger,
    'async_mode': os.environ.get('EIO_ASYNC_MODE') or None,
}

if ENGINE == 'python-engineio':
    import engineio
    eio: Any = engineio.Server(**options)
    app = engineio.WSGIApp(eio, static_files={'/demo': DEMO})
else:
    import engineio_wsgi
    eio = engineio_wsgi.Server(**options)
    app = engineio_wsgi.WSGIApp(eio, static_files={'/demo': DEMO})


@eio.on('connect')
def on_connect(sid: str, environ: dict[str, Any]) -> Any:
    refuse = environ.get('HTTP_X_REFUSE')
    return json.loads(refuse) if refuse else None


@eio.on('message')
def on_message(sid: str, data: Any) -> None:
    eio.send(sid, data)
