"""SIGTERM to gunicorn with sessions open: every client receives ``1``, then the
process exits (with the shipped hook, engineio_wsgi.gunicorn_hooks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import websocket

from tests.integration.gunicorn_runner import start_gunicorn
from tests.live import PollingClient, decode_payload, wait_until, waiting_get

WORKERS = {'gevent': ['-k', 'gevent'], 'gthread': ['-k', 'gthread', '--threads', '20']}


def start(worker: str) -> tuple[subprocess.Popen, int, list[str]]:
    """The echo app with the SIGTERM hook; (process, port, stderr lines)."""
    server = start_gunicorn(
        WORKERS[worker], 'tests.apps.echo:app', {'EIO_PING_INTERVAL': '5', 'EIO_PING_TIMEOUT': '5'},
        extra=['--graceful-timeout', '20', '-c', 'python:engineio_wsgi.gunicorn_hooks'])
    return server.proc, server.port, server.log


def kill(proc: subprocess.Popen) -> None:
    """The server's process group, unless it exited already."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


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
        kill(proc)
    text = ''.join(log)
    assert 'Traceback' not in text, text


@pytest.mark.parametrize('worker', sorted(WORKERS))
@pytest.mark.timeout(60)
def test_sigterm_close_packet_reaches_a_websocket_client_that_reads_late(worker):
    """A WebSocket is no request in flight: the worker's exit waits for the
    hook's shutdown, so a client that reads only later (but within the
    shutdown timeout) still gets everything queued, then ``1``."""
    import socket
    proc, port, log = start(worker)
    try:
        ws = websocket.create_connection(
            f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=20,
            sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        opened = ws.recv()
        assert opened.startswith('0')
        sid = json.loads(opened[1:])['sid']
        ws.send('4__sendseq 300 20000')   # far more than the socket buffers hold
        wait_until(lambda: f"echo: message {sid} '__sendseq" in ''.join(log), timeout=10,
                   message='the handler got the command')
        os.kill(proc.pid, signal.SIGTERM)
        # part of the scenario, not a wait for a state: a slow client, which
        # reads only after the worker would have exited had it not waited
        # for the shutdown (about a second after SIGTERM)
        time.sleep(3.0)
        frames = []
        try:
            while True:
                frames.append(ws.recv())
        except websocket.WebSocketException:
            pass
        assert frames[-1:] == [''], frames[-2:]   # websocket-client's close frame
        frames.pop()
        assert frames and frames[-1] == '1', (len(frames), frames[-2:])
        # what was queued before the close came whole and in order (the
        # command's sends that came after the shutdown began were refused)
        numbered = [f for f in frames[:-1] if f != '4sendseq done']
        assert numbered, frames[:3]
        assert [int(f[1:7]) for f in numbered] == list(range(len(numbered))), frames[:3]
        proc.wait(timeout=15)
        assert proc.returncode == 0
    finally:
        kill(proc)


@pytest.mark.parametrize('worker', sorted(WORKERS))
@pytest.mark.timeout(60)
def test_sigterm_sends_close_to_every_websocket_client_with_no_request_in_flight(worker):
    # as the first test, without the waiting GET that keeps a request in flight
    proc, port, log = start(worker)
    try:
        sockets = [websocket.create_connection(
            f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=10)
            for _ in range(15)]
        for ws in sockets:
            assert ws.recv().startswith('0')
        os.kill(proc.pid, signal.SIGTERM)
        got = [ws.recv() for ws in sockets]
        assert got == ['1'] * len(sockets)
        proc.wait(timeout=15)
        assert proc.returncode == 0
    finally:
        kill(proc)
