"""Echo server on python-engineio, for ``gunicorn servers.pyeio_echo:app``.

Same behaviour and settings as ``eiowsgi_echo.py``: every message goes back to
its sender, ``broadcast`` sends ``b`` to every connected session, ``big:N``
sends its sender N bytes of text.

Environment: BENCH_ASYNC_MODE (gevent | threading), BENCH_PING_INTERVAL,
BENCH_PING_TIMEOUT (seconds).
"""

import os

import engineio

sids = set()

eio = engineio.Server(
    async_mode=os.environ.get('BENCH_ASYNC_MODE') or None,
    ping_interval=int(os.environ.get('BENCH_PING_INTERVAL', '25')),
    ping_timeout=int(os.environ.get('BENCH_PING_TIMEOUT', '20')),
    cors_allowed_origins='*',
)


@eio.on('connect')
def connect(sid, environ):
    sids.add(sid)


@eio.on('disconnect')
def disconnect(sid, *args):
    sids.discard(sid)


@eio.on('message')
def message(sid, data):
    if data == 'broadcast':
        for other in list(sids):
            eio.send(other, 'b')
    elif isinstance(data, str) and data.startswith('big:'):
        eio.send(sid, 'x' * int(data[4:]))
    else:
        eio.send(sid, data)


app = engineio.WSGIApp(eio)
