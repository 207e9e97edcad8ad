"""SIGTERM to gunicorn with sessions open: every client receives ``1``, then the
process exits (with the shipped hook, engineio_wsgi.gunicorn_hooks)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import websocket

from tests.live import ROOT, PollingClient, decode_payload, waiting_get

WORKERS = {'gevent': ['-k', 'gevent'], 'gthread': ['-k', 'gthread', '--threads', '20']}


def start_gunicorn(worker: str) -> tuple[subprocess.Popen, int, list[str]]:
    env = {**os.environ, 'PYTHONPATH': ROOT, 'EIO_PING_INTERVAL': '5', 'EIO_PING_TIMEOUT': '5'}
    proc = subprocess.Popen(
        [sys.executable, '-m', 'gunicorn', '-w', '1', '-b', '127.0.0.1:0',
         '--graceful-timeout', '20', '--no-control-socket',
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
@pytest.mark.timeout(60)
def test_sigterm_sends_close_to_every_client_then_exits(worker):
    proc, port, log = start_gunicorn(worker)
    try:
        polling = PollingClient(port)
        polling.handshake()
        ws = websocket.create_connection(
            f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=10)
        assert ws.recv().startswith('0')
        waiting = waiting_get(polling, timeout=15)
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        assert ws.recv() == '1'
        assert [p.type for p in decode_payload(waiting.result(15).body)] == ['1']
        proc.wait(timeout=15)
        # well before the 20 s graceful timeout: the hook ended the sessions
        assert time.monotonic() - started < 8
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = ''.join(log)
    assert 'Traceback' not in text, text
