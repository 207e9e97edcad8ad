"""A clustered echo server whose message handler runs on the I/O path
(``async_handlers=False``, as python-socketio sets it) and can block:
``block <seconds>`` writes ``blocking <sid>`` to stderr, sleeps, then sends
``unblocked``; anything else is echoed.

    EIO_CLUSTER   the cluster= value (a redis:// URL)
"""

from __future__ import annotations

import os
import sys
import time

import engineio_wsgi

eio = engineio_wsgi.Server(cluster=os.environ['EIO_CLUSTER'], async_handlers=False)


@eio.on('message')
def on_message(sid: str, data: str | bytes) -> None:
    if isinstance(data, str) and data.startswith('block '):
        sys.stderr.write(f'blocking {sid}\n')
        sys.stderr.flush()
        # the scenario: a handler that blocks its thread for the given time
        time.sleep(float(data.split()[1]))
        eio.send(sid, 'unblocked')
    else:
        eio.send(sid, data)


app = engineio_wsgi.WSGIApp(eio)
