"""``socketio.run(app)`` of engineio_wsgi's Flask-SocketIO serves on the server
stock Flask-SocketIO would pick, and the log has no line of the Socket.IO
server that Flask-SocketIO builds and engineio_wsgi replaces."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile

import pytest
import socketio

from tests.cluster.services import free_port
from tests.live import ROOT, LiveServer, _child_env, http_request, start_server, wait_until

APP = 'tests.apps.flask_sio_run'
HANDSHAKE = '/socket.io/?EIO=4&transport=polling'


def _run(env: dict[str, str]) -> LiveServer:
    """``python -m tests.apps.flask_sio_run``, its output in a log file."""
    port = free_port()
    fd, log_path = tempfile.mkstemp(prefix='eio-flask-run-', suffix='.log')
    with os.fdopen(fd, 'wb') as log_file:
        proc = subprocess.Popen(
            [sys.executable, '-m', APP], cwd=ROOT,
            env=_child_env({**env, 'SIO_PORT': str(port)}), stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer('socketio.run', APP, env, log_path, proc)
    server.port = port
    return server


def _answers(server: LiveServer) -> bool:
    assert server.alive(), server.log()
    try:
        return http_request(server.port, 'GET', '/', timeout=2).status == 200
    except OSError:
        return False


@pytest.mark.parametrize('async_mode', ['', 'gevent'])
def test_run_serves_on_gevent_when_it_is_installed(async_mode):
    # gevent and gevent-websocket are installed: stock Flask-SocketIO serves
    # with gevent's pywsgi and gevent-websocket's handler, so does this one
    with _run({'SIO_ASYNC_MODE': async_mode}) as server:
        wait_until(lambda: _answers(server), timeout=20, message='socketio.run answering')
        resp = http_request(server.port, 'GET', HANDSHAKE, timeout=10)
        assert resp.status == 200, resp
        assert resp.body.startswith(b'0{"sid":'), resp
        assert server.wait_for_log('serving polling, websocket on gevent.pywsgi (gevent)'), \
            server.log_tail()
        for transports in (None, ['websocket']):   # upgraded, and WebSocket only
            assert _echo(server, transports) == ('hello', 'websocket'), transports
        log = server.log()
    assert 'Server initialized for' not in log, log
    assert 'Traceback' not in log, log


def _echo(server: LiveServer, transports: list[str] | None) -> tuple[str, str]:
    """A message sent back by the server to python-socketio's client, and the
    transport the client ended on."""
    received: queue.Queue[str] = queue.Queue()
    client = socketio.Client(reconnection=False)
    client.on('message', received.put)
    client.connect(server.url, transports=transports, wait_timeout=10)
    try:
        if transports is None:
            wait_until(lambda: client.transport() == 'websocket', timeout=10,
                       message='the upgrade to WebSocket')
        client.send('hello')
        return received.get(timeout=10), client.transport()
    finally:
        client.disconnect()


def test_run_with_threading_refuses_werkzeug_as_flask_socketio_does():
    # stock Flask-SocketIO's own refusal: werkzeug outside a terminal needs
    # allow_unsafe_werkzeug=True
    with _run({'SIO_ASYNC_MODE': 'threading'}) as server:
        wait_until(lambda: not server.alive(), timeout=20, message='run() refusing')
        log = server.log()
    assert 'Pass allow_unsafe_werkzeug=True to the run() method' in log, log
    assert 'Server initialized for' not in log, log


def test_an_async_mode_this_engine_lacks_fails_with_what_to_use():
    out = subprocess.run([sys.executable, '-m', APP], cwd=ROOT, capture_output=True, text=True,
                         env=_child_env({'SIO_ASYNC_MODE': 'eventlet', 'SIO_PORT': '1'}),
                         timeout=60)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('ValueError: '), out.stderr
    assert 'async_mode="gevent"' in last and "'eventlet'" in last, last


def test_gthread_log_has_no_line_of_the_replaced_server():
    with start_server('gunicorn-gthread', f'{APP}:app') as server:
        resp = http_request(server.port, 'GET', HANDSHAKE, timeout=10)
        assert resp.status == 200, resp
        assert server.wait_for_log('serving polling, websocket on gunicorn (threading)'), \
            server.log_tail()
        log = server.log()
    assert 'Server initialized for' not in log, log
