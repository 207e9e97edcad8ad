"""Echo server on engineio_wsgi with ``cluster=`` when BENCH_CLUSTER is set,
for ``gunicorn -w N servers.eiowsgi_cluster_echo:app`` (bench/cluster.py).

Every message goes back to its sender (from the process that owns the
session, whichever process received it).

Environment: BENCH_CLUSTER (a redis:// URL; unset: no cluster),
BENCH_PING_INTERVAL, BENCH_PING_TIMEOUT (seconds).
"""

import os

import engineio_wsgi

options = {}
if os.environ.get('BENCH_CLUSTER'):
    options['cluster'] = os.environ['BENCH_CLUSTER']

eio = engineio_wsgi.Server(
    ping_interval=int(os.environ.get('BENCH_PING_INTERVAL', '25')),
    ping_timeout=int(os.environ.get('BENCH_PING_TIMEOUT', '20')),
    cors_allowed_origins='*',
    **options,
)


@eio.on('message')
def message(sid, data):
    eio.send(sid, data)


app = engineio_wsgi.WSGIApp(eio)
