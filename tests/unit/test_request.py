"""Request: what the library reads from a WSGI environ, and ServerAdapter on real sockets.

The live counterparts (each server's own environ) are in
tests/integration/test_rfc6455.py (test_adapter_*).
"""

from __future__ import annotations

import io
import select
import socket
import struct
import time
import types
from collections.abc import Iterator
from typing import Any

import gevent.socket as gevent_socket
import pytest
from geventwebsocket.websocket import Stream, WebSocket

from engineio_wsgi import wsgi_servers
from engineio_wsgi.errors import BadRequest, UnknownTransport, UnsupportedProtocolVersion
from engineio_wsgi.request import Request, parse_request
from engineio_wsgi.wsgi_servers import (
    GEVENT_WEBSOCKET,
    GUNICORN,
    PYWSGI,
    UNKNOWN,
    WERKZEUG,
    ServerAdapter,
    peer_gone,
)

pytestmark = pytest.mark.timeout(10)


def test_fields_as_sent() -> None:
    request = Request({
        'REQUEST_METHOD': 'post', 'SERVER_PROTOCOL': 'http/1.0', 'PATH_INFO': '',
        'QUERY_STRING': 'EIO=4', 'CONTENT_TYPE': 'Application/Octet-Stream ; x=1',
        'CONTENT_LENGTH': '12', 'HTTP_TRANSFER_ENCODING': 'gzip, Chunked',
        'HTTP_ACCEPT_ENCODING': 'br', 'HTTP_ORIGIN': 'https://a.example',
        'HTTP_ACCESS_CONTROL_REQUEST_HEADERS': 'x-a',
        'HTTP_SEC_WEBSOCKET_KEY': ' k== ', 'HTTP_SEC_WEBSOCKET_VERSION': ' 13 ',
    })
    assert (request.method, request.raw_method) == ('POST', 'post')
    assert request.http_version == 'HTTP/1.0'
    assert request.path == '/'
    assert request.query_string == 'EIO=4'
    assert request.content_type == 'application/octet-stream'
    assert request.content_length == '12'
    assert request.chunked is True
    assert request.accept_encoding == 'br'
    assert request.origin == 'https://a.example'
    assert request.access_control_request_headers == 'x-a'
    assert (request.websocket_key, request.websocket_version) == ('k==', '13')


def test_defaults_of_a_bare_environ() -> None:
    request = Request({})
    assert (request.method, request.raw_method) == ('GET', None)
    assert request.http_version == 'HTTP/1.1'
    assert request.path == '/'
    assert (request.query_string, request.content_type, request.content_length) == ('', '', '')
    assert request.chunked is False
    assert request.origin is None and request.access_control_request_headers is None
    assert request.asks_for_upgrade is False
    assert request.own_origin == 'http://:'
    assert request.client_address(()) == ''
    assert (request.transport, request.sid, request.b64) == ('', None, False)


@pytest.mark.parametrize('environ,expected', [
    ({'wsgi.url_scheme': 'http', 'HTTP_HOST': 'h:8000'}, 'http://h:8000'),
    ({'wsgi.url_scheme': 'https', 'SERVER_NAME': 's', 'SERVER_PORT': '443'}, 'https://s:443'),
    ({'wsgi.url_scheme': 'http', 'HTTP_HOST': 'h', 'HTTP_X_FORWARDED_PROTO': 'https, http',
      'HTTP_X_FORWARDED_HOST': 'app.io, inner'}, 'https://app.io'),
])
def test_own_origin(environ: dict[str, Any], expected: str) -> None:
    assert Request(environ).own_origin == expected


@pytest.mark.parametrize('upgrade,connection,asks', [
    ('websocket', 'Upgrade', True),
    ('WebSocket', 'keep-alive, Upgrade', True),
    ('h2c, websocket', 'Upgrade', False),
    ('websocketx', 'Upgrade', False),
    ('websocket', 'notupgrade', False),
    ('', 'Upgrade', False),
])
def test_one_reading_of_upgrade_and_connection(upgrade: str, connection: str, asks: bool) -> None:
    request = Request({'HTTP_UPGRADE': upgrade, 'HTTP_CONNECTION': connection})
    assert request.asks_for_upgrade is asks
    if not asks:
        with pytest.raises(BadRequest):
            request.require_upgrade()


def test_a_request_gevent_websocket_upgraded_asks_for_it_whatever_its_headers() -> None:
    request = Request({'wsgi.websocket': object()})
    assert request.adapter.upgraded and request.asks_for_upgrade
    request.require_upgrade()


def test_headers_in_title_case_and_strings_only() -> None:
    request = Request({'HTTP_SEC_WEBSOCKET_KEY': 'k', 'HTTP_X_ODD': 3, 'CONTENT_TYPE': 'x',
                       'HTTP_HOST': 'h'})
    assert sorted(request.headers()) == [('Host', 'h'), ('Sec-Websocket-Key', 'k')]


@pytest.mark.parametrize('remote,forwarded,trusted,expected', [
    ('1.1.1.1', '9.9.9.9', (), '1.1.1.1'),
    ('1.1.1.1', '9.9.9.9', ('2.2.2.2',), '1.1.1.1'),
    ('2.2.2.2', '9.9.9.9, 3.3.3.3', ('2.2.2.2',), '3.3.3.3'),
    ('2.2.2.2', '9.9.9.9, 3.3.3.3', ('2.2.2.2', '3.3.3.3'), '9.9.9.9'),
    ('2.2.2.2', '', ('2.2.2.2',), '2.2.2.2'),
])
def test_client_address(remote: str, forwarded: str, trusted: tuple[str, ...],
                        expected: str) -> None:
    request = Request({'REMOTE_ADDR': remote, 'HTTP_X_FORWARDED_FOR': forwarded})
    assert request.client_address(trusted) == expected


def test_parse_request_fills_in_the_engineio_fields() -> None:
    request = Request({'QUERY_STRING': 'EIO=4&transport=polling&sid=a%2Bb&b64=1'})
    assert parse_request(request, ('polling',)) is request
    assert (request.transport, request.sid, request.b64) == ('polling', 'a+b', True)


@pytest.mark.parametrize('query,error', [
    ('EIO=3&transport=polling', UnsupportedProtocolVersion),
    ('EIO=4&transport=websocket', UnknownTransport),
    ('EIO=4&transport=polling&sid=a&sid=b', BadRequest),
])
def test_parse_request_refuses(query: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_request(Request({'QUERY_STRING': query}), ('polling',))


def test_parse_request_refuses_a_malformed_origin() -> None:
    request = Request({'QUERY_STRING': 'EIO=4&transport=polling', 'HTTP_ORIGIN': 'a b'})
    with pytest.raises(BadRequest):
        parse_request(request, ('polling',))


# -- ServerAdapter on real sockets ---------------------------------------------

@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    client.settimeout(5)
    with server, client:
        yield server, client


@pytest.mark.parametrize('key,kind', [('werkzeug.socket', WERKZEUG), ('gunicorn.socket', GUNICORN)])
def test_kind_and_socket(pair: tuple[socket.socket, socket.socket], key: str, kind: str) -> None:
    server, _ = pair
    adapter = ServerAdapter({key: server, 'wsgi.input': io.BytesIO(b'')})
    assert (adapter.kind, adapter.sock) == (kind, server)
    assert not adapter.upgraded


def test_no_socket_no_kind() -> None:
    adapter = ServerAdapter({'wsgi.input': io.BytesIO(b'')})
    assert (adapter.kind, adapter.sock) == (UNKNOWN, None)
    assert adapter.peer_gone() is False          # nothing to look at: never "gone"
    assert adapter.take_read_ahead() == b''


def test_pywsgi_layout_finds_the_gevent_socket_under_the_reader() -> None:
    server, client = gevent_socket.socketpair()
    with server, client:
        reader = server.makefile('rb')
        adapter = ServerAdapter({'wsgi.input': reader})
        assert (adapter.kind, adapter.sock) == (PYWSGI, server)


def test_peer_gone_follows_the_client(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    adapter = ServerAdapter({'gunicorn.socket': server})
    assert adapter.peer_gone() is False
    client.sendall(b'x')                         # data waiting: still there
    assert adapter.peer_gone() is False
    client.close()
    assert adapter.peer_gone() is True


def _socket_pair(kind: str) -> tuple[Any, Any]:
    """A connected (server side, client side) pair; the server side as the servers have it."""
    if kind == 'gevent':
        return gevent_socket.socketpair()
    server, client = socket.socketpair()
    if kind == 'timeout':       # a server that sets a socket timeout
        server.settimeout(5)
    elif kind == 'nonblocking':
        server.setblocking(False)
    return server, client


PEER_KINDS = ['blocking', 'timeout', 'nonblocking', 'gevent']


@pytest.mark.parametrize('kind', PEER_KINDS)
def test_peer_gone_answers_at_once_and_reads_nothing(kind: str) -> None:
    server, client = _socket_pair(kind)
    with server, client:
        started = time.monotonic()
        assert peer_gone(server) is False            # nothing sent: alive, and never waits
        assert time.monotonic() - started < 1
        client.sendall(b'GET')
        assert peer_gone(server) is False            # data waiting: alive
        assert peer_gone(server) is False
        server.setblocking(True)
        assert server.recv(3) == b'GET'              # peeked at, never consumed


@pytest.mark.parametrize('kind', PEER_KINDS)
def test_peer_gone_when_the_client_closed(kind: str) -> None:
    server, client = _socket_pair(kind)
    with server:
        client.close()
        assert peer_gone(server) is True


@pytest.mark.parametrize('kind', PEER_KINDS)
def test_peer_gone_when_the_client_closed_behind_unread_data(kind: str) -> None:
    server, client = _socket_pair(kind)
    with server:
        client.sendall(b'x')
        client.close()
        assert peer_gone(server) is True


@pytest.mark.parametrize('kind', PEER_KINDS)
def test_peer_gone_when_the_client_only_stopped_sending(kind: str) -> None:
    server, client = _socket_pair(kind)
    with server, client:
        client.shutdown(socket.SHUT_WR)
        assert peer_gone(server) is True


@pytest.mark.parametrize('kind', PEER_KINDS)
def test_peer_gone_on_a_socket_closed_here(kind: str) -> None:
    server, client = _socket_pair(kind)
    with client:
        server.close()
        assert peer_gone(server) is True


@pytest.mark.parametrize('use_gevent', [False, True])
def test_peer_gone_when_the_client_reset_the_connection(use_gevent: bool) -> None:
    module: Any = gevent_socket if use_gevent else socket
    listener = module.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
        with server:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            client.close()                           # RST instead of FIN
            # the RST crosses loopback: wait until it made the socket readable
            assert select.select([server], [], [], 5)[0]
            assert peer_gone(server) is True


@pytest.mark.parametrize('kind', ['blocking', 'nonblocking', 'gevent'])
def test_peer_gone_needs_no_poll_when_nothing_is_waiting(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One system call for the usual answers: no poll object per check.

    (A socket with a timeout still goes through poll: its ``recv`` would wait.)
    """
    def no_poll() -> None:
        raise AssertionError('select.poll used')
    server, client = _socket_pair(kind)
    with server:
        monkeypatch.setattr(wsgi_servers.select, 'poll', no_poll)
        assert peer_gone(server) is False
        client.close()
        assert peer_gone(server) is True


def test_read_ahead_is_what_the_reader_buffered_behind_the_head(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    reader = server.makefile('rb')
    client.sendall(b'GET / HTTP/1.1\r\n\r\nframe bytes')
    assert reader.readline() == b'GET / HTTP/1.1\r\n'
    assert reader.readline() == b'\r\n'
    adapter = ServerAdapter({'werkzeug.socket': server, 'wsgi.input': reader})
    assert adapter.take_read_ahead() == b'frame bytes'
    assert adapter.take_read_ahead() == b''      # taken once, and never blocks
    assert server.gettimeout() is None           # the socket's timeout is restored


def test_finish_takeover_shuts_the_connection_and_answers_101(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    adapter = ServerAdapter({'werkzeug.socket': server})
    statuses: list[tuple[str, list[Any]]] = []
    assert adapter.finish_takeover(lambda status, headers: statuses.append((status, headers))) == []
    assert statuses == [('101 Switching Protocols', [])]
    assert client.recv(1) == b''                 # the server side is shut down


def test_abandon_body_after_the_body_was_read_leaves_the_connection(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    adapter = ServerAdapter({'gunicorn.socket': server, 'wsgi.input': io.BytesIO(b'')})
    adapter.body_read = True
    adapter.abandon_body()
    client.sendall(b'next request')
    assert server.recv(64) == b'next request'    # the read side is still open


def test_abandon_body_of_an_unread_body_shuts_the_read_side(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    adapter = ServerAdapter({'gunicorn.socket': server, 'wsgi.input': io.BytesIO(b'')})
    adapter.abandon_body()                       # length unknown: nothing to wait for
    assert server.recv(1) == b''                 # reads end at once


def test_gevent_websocket_socket_and_done_mark(pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    # gevent-websocket's own WebSocket object; its handler is where the socket is
    handler = types.SimpleNamespace(socket=server, rfile=server.makefile('rb'))
    ws = WebSocket({}, Stream(handler), handler)
    adapter = ServerAdapter({'wsgi.websocket': ws})
    assert (adapter.kind, adapter.sock) == (GEVENT_WEBSOCKET, server)
    assert adapter.upgraded
    adapter.mark_websocket_done()               # its handler must not send a close frame
    assert ws.closed is True
