"""shutdown() closes all sessions at once: clients that stopped reading cost
nothing extra each (SIGTERM to gunicorn with the shipped hook)."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
import websocket

from tests.integration.gunicorn_runner import Gunicorn, start_gunicorn
from tests.live import PollingClient

WORKERS = {'gevent': ['-k', 'gevent'], 'gthread': ['-k', 'gthread', '--threads', '20']}
SHUTDOWN_TIMEOUT = 1.0
STUCK = 6


def start(worker: str) -> Gunicorn:
    env = {'EIO_PING_INTERVAL': '20', 'EIO_PING_TIMEOUT': '20',
           'EIO_SHUTDOWN_TIMEOUT': str(SHUTDOWN_TIMEOUT), 'EIO_MAX_QUEUED_PACKETS': '100000',
           'EIO_LOG_LEVEL': 'INFO'}
    return start_gunicorn(WORKERS[worker], 'tests.apps.echo:app', env,
                          ['--graceful-timeout', '60', '-c', 'python:engineio_wsgi.gunicorn_hooks'])


@pytest.mark.parametrize('worker', sorted(WORKERS))
@pytest.mark.timeout(90)
def test_shutdown_with_clients_that_stopped_reading_takes_its_timeout_not_more(worker):
    server = start(worker)
    proc, port = server.proc, server.port
    sockets = []
    try:
        sids = []
        for _ in range(STUCK):
            # a tiny receive buffer: the server's writes block soon
            ws = websocket.create_connection(
                f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=10,
                sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
            sids.append(ws.recv().split('"sid":"')[1].split('"')[0])
            sockets.append(ws)
        control = PollingClient(port)
        control.handshake()
        # 40 x 200 kB to each: far more than the socket buffers hold; these
        # clients never read again
        control.send(f'__sendto 40 200000 {",".join(sids)}')
        assert control.receive(1, timeout=20) == ['sendto done']
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - started
        assert proc.returncode == 0
        # one shutdown_timeout for all of them, plus the worker's own exit
        assert took < SHUTDOWN_TIMEOUT + 3.0, f'shutdown took {took:.1f} s'
    finally:
        for ws in sockets:
            ws.sock.close()
        server.kill()
    text = server.text()
    assert 'Traceback' not in text, text
