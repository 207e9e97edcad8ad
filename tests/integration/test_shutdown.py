"""SIGTERM to gunicorn with sessions open: every client receives ``1``, then the
process exits (with the shipped hook, engineio_wsgi.gunicorn_hooks)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import websocket

from tests.integration.gunicorn_runner import start_gunicorn
from tests.live import PollingClient, decode_payload, waiting_get

WORKERS = {'gevent': ['-k', 'gevent'], 'gthread': ['-k', 'gthread', '--threads', '20']}


def start(worker: str) -> tuple[subprocess.Popen, int, list[str]]:
    """The echo app with the SIGTERM hook; (process, port, stderr lines)."""
    server = start_gunicorn(
        WORKERS[worker], 'tests.apps.echo:app', {'EIO_PING_INTERVAL': '5', 'EIO_PING_TIMEOUT': '5'},
        extra=['--graceful-timeout', '20', '-c', 'python:engineio_wsgi.gunicorn_hooks'])
    return server.proc, server.port, server.log


@pytest.mark.parametrize('worker', sorted(WORKERS))
@pytest.mark.timeout(60)
def test_sigterm_sends_close_to_every_client_then_exits(worker):
    proc, port, log = start(worker)
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


@pytest.mark.xfail(strict=True, reason='review: on gthread no request is in flight for a '
                   'WebSocket, the worker exits before its close packet is written')
@pytest.mark.timeout(60)
def test_sigterm_close_packet_reaches_a_websocket_client_that_reads_late():
    import socket
    proc, port, log = start('gthread')
    try:
        ws = websocket.create_connection(
            f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=20,
            sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        assert ws.recv().startswith('0')
        ws.send('4__sendseq 300 20000')   # far more than the socket buffers hold
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(3.0)   # the client reads late, well within the graceful timeout
        frames = []
        try:
            while True:
                frames.append(ws.recv())
        except websocket.WebSocketException:
            pass
        assert '1' in frames, (len(frames), frames[-2:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.xfail(strict=False, reason='review: on gthread no request is in flight for a '
                   'WebSocket, the worker exits before the hook closed the sessions (most '
                   'runs; not strict: the race is lost now and then)')
@pytest.mark.timeout(60)
def test_sigterm_sends_close_to_every_websocket_client_with_no_request_in_flight():
    # as the test above, without the waiting GET that keeps the worker alive
    proc, port, log = start('gthread')
    try:
        sockets = [websocket.create_connection(
            f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=10)
            for _ in range(15)]
        for ws in sockets:
            assert ws.recv().startswith('0')
        os.kill(proc.pid, signal.SIGTERM)
        closed = 0
        for ws in sockets:
            try:
                closed += ws.recv() == '1'
            except websocket.WebSocketException:
                pass
        assert closed == len(sockets)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
