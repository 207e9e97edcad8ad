"""The WebSocket handshake on a real socket (the werkzeug environ layout):
upgrade headers read one way everywhere, and a client gone before the 101
costs one log line, not a traceback."""

from __future__ import annotations

import base64
import logging
import os
import socket

import pytest

from engineio_wsgi import Server, WSGIApp
from engineio_wsgi.wsgi_servers import WebSocketTakenOver


def environ_for(sock: socket.socket, **headers: str) -> dict:
    environ = {
        'REQUEST_METHOD': 'GET', 'PATH_INFO': '/engine.io/',
        'QUERY_STRING': 'EIO=4&transport=websocket', 'SERVER_PROTOCOL': 'HTTP/1.1',
        'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '80', 'REMOTE_ADDR': '127.0.0.1',
        'wsgi.multithread': True, 'wsgi.url_scheme': 'http', 'werkzeug.socket': sock,
        'HTTP_HOST': '127.0.0.1', 'HTTP_UPGRADE': 'websocket', 'HTTP_CONNECTION': 'Upgrade',
        'HTTP_SEC_WEBSOCKET_KEY': base64.b64encode(os.urandom(16)).decode(),
        'HTTP_SEC_WEBSOCKET_VERSION': '13',
    }
    environ.update(headers)
    return environ


def start_response(status, headers, exc_info=None):
    raise AssertionError(f'no HTTP response expected, got {status}')


@pytest.fixture
def eio():
    server = Server(async_mode='threading', shutdown_timeout=0.05)
    yield server
    server.shutdown()


def test_a_client_gone_before_the_101_is_one_log_line(eio, caplog):
    server_side, client_side = socket.socketpair()
    client_side.close()   # gone before the server answers
    app = WSGIApp(eio)
    caplog.set_level(logging.DEBUG, logger='engineio_wsgi')
    try:
        with pytest.raises(WebSocketTakenOver):   # what servers take as "client gone"
            app(environ_for(server_side), start_response)
    finally:
        server_side.close()
    assert eio.session_count() == 0
    assert not [r for r in caplog.records if r.exc_info], 'a traceback was logged'
    lines = [r for r in caplog.records if 'handshake' in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert lines[0].levelno == logging.INFO


@pytest.mark.parametrize('upgrade,connection', [
    ('WebSocket', 'keep-alive, Upgrade'),
    ('websocket', 'Upgrade, keep-alive'),
])
def test_connection_is_a_token_list(eio, upgrade, connection):
    server_side, client_side = socket.socketpair()
    client_side.settimeout(5)
    app = WSGIApp(eio)
    received = []
    eio.on('connect', lambda sid, environ: received.append(sid))
    client_side.shutdown(socket.SHUT_WR)   # the client leaves right after the 101
    statuses = []
    try:
        body = app(environ_for(server_side, HTTP_UPGRADE=upgrade, HTTP_CONNECTION=connection),
                   lambda status, headers, exc_info=None: statuses.append(status))
        assert client_side.recv(12) == b'HTTP/1.1 101'
    finally:
        server_side.close()
        client_side.close()
    assert len(received) == 1
    # the WSGI call ends as a plain response (see ServerAdapter.finish_takeover)
    assert (statuses, list(body)) == (['101 Switching Protocols'], [])


@pytest.mark.parametrize('headers', [
    {'HTTP_CONNECTION': 'notupgrade'},
    # the WebSocket layer takes exactly one protocol in Upgrade
    {'HTTP_UPGRADE': 'h2c, websocket'},
    {'HTTP_UPGRADE': 'websocketx'},
])
def test_what_the_websocket_layer_refuses_is_refused_before_a_session_exists(eio, headers):
    server_side, client_side = socket.socketpair()
    statuses = []
    connected = []
    eio.on('connect', lambda sid, environ: connected.append(sid))
    try:
        WSGIApp(eio)(environ_for(server_side, **headers),
                     lambda status, headers, exc_info=None: statuses.append(status))
    finally:
        server_side.close()
        client_side.close()
    assert statuses == ['400 Bad Request']
    assert connected == []   # refused before a session exists
    assert eio.session_count() == 0
