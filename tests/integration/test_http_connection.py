"""The connection under Engine.IO's HTTP requests, on all six stacks.

An HTTP/1.1 client may send its next request on the same connection unless the
response says ``Connection: close``; Node's HTTP agent (keep-alive by default
since Node 19) does so even after asking for ``Connection: close`` itself, as
node-fetch does on every request. A server that closes the connection without
saying so makes such a client send into a closed socket ("socket hang up").
So: a response that does not say ``Connection: close`` leaves the connection
open for the next request, and one that says it is followed by the end of the
connection. A request that asks for ``close`` gets it (RFC 9112, 9.6).
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.live import (
    KINDS,
    LiveServer,
    Packet,
    PollingClient,
    Response,
    build_request,
    encode_payload,
    read_response,
    wait_for_session,
)

pytestmark = pytest.mark.timeout(60)

NEXT = '/engine.io/?EIO=4&transport=polling&sid=QQnextQQ'


@pytest.fixture(scope='module', params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def server(kind: str, server_pool) -> LiveServer:
    return server_pool.get(kind, 'normal')


def says_close(resp: Response) -> bool:
    return 'close' in [v.lower() for v in resp.header_values('Connection')]


def exchange(sock: socket.socket, port: int, method: str, target: str,
             body: bytes | None, connection: str) -> Response:
    headers = [('Connection', connection)]
    if body is not None:
        headers.append(('Content-Type', 'text/plain;charset=UTF-8'))
    sock.sendall(build_request(port, method, target, body, headers))
    return read_response(sock, method, time.monotonic())


def ended(sock: socket.socket, timeout: float = 5.0) -> bool:
    """The server closed the connection (end of file or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b''
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def requests_of_a_session(server: LiveServer) -> list[tuple[str, str, bytes | None, int]]:
    """(method, target, body, expected status): each kind of Engine.IO answer."""
    client = PollingClient(server)
    client.handshake()
    client.send('queued for the poll')
    assert client.sid is not None
    wait_for_session(server, client.sid, queued=1)
    return [
        ('GET', client.target(sid=False), None, 200),                      # handshake
        ('POST', client.target(), encode_payload([Packet.message('hi')]), 200),
        ('GET', client.target(), None, 200),                               # a poll with data
        ('GET', client.target(sid='QQnoSuchSidQQ'), None, 400),            # an error
        ('OPTIONS', client.target(), None, 204),                           # a preflight
        ('POST', client.target(), encode_payload([Packet('1')]), 200),     # the client's close
    ]


@pytest.mark.parametrize('connection', ['close', 'keep-alive'])
def test_an_unannounced_close_never_follows_an_answer(server: LiveServer, connection: str) -> None:
    """Each answer either says ``Connection: close`` and the connection ends, or
    says nothing of it and the connection carries the next request."""
    for method, target, body, status in requests_of_a_session(server):
        with socket.create_connection(('127.0.0.1', server.port), timeout=10) as sock:
            resp = exchange(sock, server.port, method, target, body, connection)
            assert resp.status == status, (method, target, resp)
            if connection == 'close':
                assert says_close(resp), f'{method} {target}: asked to close, not told: {resp}'
            if says_close(resp):
                assert ended(sock), f'{method} {target}: said close, left the connection open'
                continue
            # the next request on the same connection, as a keep-alive client sends it
            following = exchange(sock, server.port, 'GET', NEXT, None, 'close')
            assert following.status == 400, (method, target, following)
