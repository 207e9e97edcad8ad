"""``flask run --debug`` (werkzeug's server with its debugger and reloader):
each WebSocket request is logged as what it was, 101, not as a 500."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile

import pytest
import websocket  # websocket-client

from tests.live import ROOT, wait_until

FOLDER = os.path.join(ROOT, 'examples', 'flask_app')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(60)
def test_websocket_requests_are_logged_as_101_under_flask_debug():
    port = free_port()
    fd, log_path = tempfile.mkstemp(prefix='eio-flask-debug-', suffix='.log')
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([FOLDER, ROOT]),
           'PYTHONUNBUFFERED': '1'}
    with os.fdopen(fd, 'wb') as log_file:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'flask', '--app', 'app', 'run', '--debug',
             '--port', str(port)], cwd=FOLDER, env=env, stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def log() -> str:
        with open(log_path, encoding='utf-8', errors='replace') as f:
            return f.read()
    try:
        wait_until(lambda: 'Debugger is active' in log(), timeout=30, message='flask is up')
        for _ in range(2):
            ws = websocket.create_connection(
                f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=10)
            assert ws.recv().startswith('0{')
            ws.close()
        wait_until(lambda: log().count('transport=websocket HTTP/1.1') >= 2, timeout=10,
                   message='both requests logged')
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    lines = [line for line in log().splitlines() if 'transport=websocket HTTP/1.1' in line]
    assert len(lines) == 2 and all(line.rstrip().endswith('101 -') for line in lines), log()
    assert 'Traceback' not in log(), log()
    os.unlink(log_path)
