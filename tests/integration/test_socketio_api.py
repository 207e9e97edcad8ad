"""engineio_wsgi.socketio and engineio_wsgi.flask_socketio in this process, on a
real threaded werkzeug server, with python-socketio's Client: what the wire
tests (tests/interop/test_socketio.py) do not cover.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import flask
import flask_socketio
import pytest
import requests
import socketio
from werkzeug.serving import make_server

import engineio_wsgi
from engineio_wsgi.flask_socketio import SocketIO
from engineio_wsgi.socketio import Server, WSGIApp


@pytest.fixture
def served() -> Iterator[tuple[Server, str]]:
    sio = Server(async_mode='threading')
    httpd = make_server('127.0.0.1', 0, WSGIApp(sio), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield sio, f'http://127.0.0.1:{httpd.server_port}'
    finally:
        sio.shutdown()
        httpd.shutdown()
        thread.join(5)


def test_engine_is_engineio_wsgi_and_reports_its_mode() -> None:
    sio = Server(async_mode='threading')
    assert isinstance(sio.eio, engineio_wsgi.Server)
    assert sio.async_mode == sio.eio.async_mode == 'threading'
    assert sio.reason.CLIENT_DISCONNECT == engineio_wsgi.Server.reason.CLIENT_DISCONNECT
    # a plain socketio.Server is left alone: nothing is patched globally
    assert type(socketio.Server(async_mode='threading').eio).__module__.startswith('engineio.')


def test_instrument_fails_with_a_clear_message() -> None:
    with pytest.raises(NotImplementedError, match='Admin UI'):
        Server(async_mode='threading').instrument(auth=False)


def test_shutdown_disconnects_clients(served: tuple[Server, str]) -> None:
    sio, url = served
    client = socketio.Client(reconnection=False)
    gone = threading.Event()
    client.on('disconnect', lambda *args: gone.set())
    client.connect(url, wait_timeout=10)
    sio.shutdown()
    assert gone.wait(10)
    with pytest.raises(socketio.exceptions.ConnectionError):
        socketio.Client(reconnection=False).connect(url, wait_timeout=5)


def test_flask_socketio_runs_on_engineio_wsgi() -> None:
    app = flask.Flask(__name__)
    sock = SocketIO(app, async_mode='threading', ping_interval=3)

    @sock.on('ping_me')
    def ping_me(data: Any) -> Any:
        return data

    assert isinstance(sock.server, Server)
    assert isinstance(sock.server.eio, engineio_wsgi.Server)
    assert sock.async_mode == sock.server.eio.async_mode == 'threading'
    assert sock.server.eio.options.ping_interval == 3
    assert app.wsgi_app.engineio_app is sock.server
    httpd = make_server('127.0.0.1', 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client = socketio.Client(reconnection=False)
    try:
        client.connect(f'http://127.0.0.1:{httpd.server_port}', wait_timeout=10)
        assert client.call('ping_me', {'a': 1}, timeout=10) == {'a': 1}
    finally:
        client.disconnect()
        sock.server.shutdown()
        httpd.shutdown()
        thread.join(5)


def test_flask_socketio_init_app_later_and_message_queue_option() -> None:
    # Flask-SocketIO leaves message_queue among the server's options; with no
    # URL it is not the engine's business and must not be refused as unknown
    sock = SocketIO(message_queue=None, async_mode='threading')
    app = flask.Flask(__name__)
    sock.init_app(app)
    assert isinstance(sock.server.eio, engineio_wsgi.Server)
    assert app.extensions['socketio'] is sock


@pytest.mark.parametrize('wrapper', ['engineio_wsgi', 'socketio'])
def test_both_wsgi_wrappers_serve_sockets_statics_and_the_app(
        wrapper: str, tmp_path: Any) -> None:
    sio = Server(async_mode='threading')

    @sio.on('hello')
    def hello(sid: str, data: Any) -> Any:
        return ['hi', data]

    (tmp_path / 'a.txt').write_text('static text', encoding='utf-8')

    def fallback(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'the app']

    wrap = WSGIApp if wrapper == 'engineio_wsgi' else socketio.WSGIApp
    app = wrap(sio, fallback, static_files={'/a.txt': str(tmp_path / 'a.txt')},
               socketio_path='rt')
    httpd = make_server('127.0.0.1', 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f'http://127.0.0.1:{httpd.server_port}'
    client = socketio.Client(reconnection=False)
    try:
        client.connect(url, socketio_path='rt', wait_timeout=10)
        assert client.transport() == 'websocket'
        assert client.call('hello', 'x', timeout=10) == ['hi', 'x']
        assert requests.get(f'{url}/a.txt', timeout=5).text == 'static text'
        assert requests.get(f'{url}/other', timeout=5).text == 'the app'
    finally:
        client.disconnect()
        sio.shutdown()
        httpd.shutdown()
        thread.join(5)


def test_flask_socketio_test_client_works() -> None:
    # Flask-SocketIO's own test client (no network) keeps working for apps
    app = flask.Flask(__name__)
    app.config['SECRET_KEY'] = 'tests only'
    sock = SocketIO(app, async_mode='threading')

    @sock.on('connect')
    def connect(auth: Any) -> None:
        flask.session['user'] = 'ann'

    @sock.on('echo')
    def echo(data: Any) -> str:
        flask_socketio.emit('back', [data, flask.session['user']])
        return 'ok'

    client = sock.test_client(app)
    assert client.is_connected()
    assert client.emit('echo', 1, callback=True) == 'ok'
    assert client.get_received() == [{'name': 'back', 'args': [[1, 'ann']], 'namespace': '/'}]
    client.disconnect()
    assert not client.is_connected()


def test_a_python_socketio_without_the_engine_hook_is_refused_clearly() -> None:
    import engineio

    class OldStyle(Server):
        # what a python-socketio that ignored the hook would build
        def _engineio_server_class(self) -> Any:
            return engineio.Server

    with pytest.raises(RuntimeError, match='not supported by engineio_wsgi.socketio'):
        OldStyle(async_mode='threading')
