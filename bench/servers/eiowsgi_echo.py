"""Echo server on engineio_wsgi, for ``gunicorn servers.eiowsgi_echo:app``.

Every message goes back to its sender; the text message ``broadcast`` makes
the server send ``b`` to every connected session instead, and ``big:N`` sends
its sender N bytes of text (for clients that ask for much and stop reading).

Environment: BENCH_ASYNC_MODE (gevent | threading), BENCH_PING_INTERVAL,
BENCH_PING_TIMEOUT (seconds, whole numbers so every server advertises the same),
BENCH_LOGGER=1 for the library's own log (each session's end and its reason).
"""

import logging
import os

import engineio_wsgi

if os.environ.get('BENCH_LOGGER') == '1':
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s')

sids = set()

eio = engineio_wsgi.Server(
    async_mode=os.environ.get('BENCH_ASYNC_MODE') or None,
    ping_interval=int(os.environ.get('BENCH_PING_INTERVAL', '25')),
    ping_timeout=int(os.environ.get('BENCH_PING_TIMEOUT', '20')),
    cors_allowed_origins='*',
    logger=os.environ.get('BENCH_LOGGER') == '1',
)


@eio.on('connect')
def connect(sid, environ):
    sids.add(sid)


@eio.on('disconnect')
def disconnect(sid, reason):
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


app = engineio_wsgi.WSGIApp(eio)
