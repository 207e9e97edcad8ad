"""shutdown() closes all sessions at once: clients that stopped reading cost
nothing extra each (SIGTERM to gunicorn with the shipped hook)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import websocket

from tests.live import ROOT, PollingClient

WORKERS = {'gevent': ['-k', 'gevent'], 'gthread': ['-k', 'gthread', '--threads', '20']}
SHUTDOWN_TIMEOUT = 1.0
STUCK = 6


def start_gunicorn(worker: str) -> tuple[subprocess.Popen, int, list[str]]:
    env = {**os.environ, 'PYTHONPATH': ROOT, 'EIO_PING_INTERVAL': '20', 'EIO_PING_TIMEOUT': '20',
           'EIO_SHUTDOWN_TIMEOUT': str(SHUTDOWN_TIMEOUT), 'EIO_MAX_QUEUED_PACKETS': '100000',
           'EIO_LOG_LEVEL': 'INFO'}
    proc = subprocess.Popen(
        [sys.executable, '-m', 'gunicorn', '-w', '1', '-b', '127.0.0.1:0',
         '--graceful-timeout', '60', '--no-control-socket',
         '-c', 'python:engineio_wsgi.gunicorn_hooks', *WORKERS[worker], 'tests.apps.echo:app'],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    port = None
    deadline = time.monotonic() + 20
    while port is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r'Listening at: http://127\.0\.0\.1:(\d+)', line)
        if match:
            port = int(match.group(1))
    if port is None:
        proc.kill()
        pytest.fail('gunicorn did not start:\n' + ''.join(lines))
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc, port, lines


@pytest.mark.parametrize('worker', sorted(WORKERS))
@pytest.mark.timeout(90)
def test_shutdown_with_clients_that_stopped_reading_takes_its_timeout_not_more(worker):
    proc, port, log = start_gunicorn(worker)
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
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = ''.join(log)
    assert 'Traceback' not in text, text
