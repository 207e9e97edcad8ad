"""The ``connection_error`` event: every refused request calls the
application's handler with the request's environ and the code and message of
the error body it is answered with; a handler that raises is logged and the
client still gets its answer.

Read from the log of a real server (tests/apps/echo.py with
``EIO_CONNECTION_ERROR=1``, whose handler writes one line per call) driven
by real clients.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest
import websocket  # websocket-client

from tests.hostile.tools import RawWebSocket
from tests.live import (
    LiveServer,
    PollingClient,
    expect_error,
    http_request,
    start_server,
    wait_until,
)

_tags = itertools.count()


@pytest.fixture(scope='module', params=['gunicorn-gthread', 'gunicorn-gevent'])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    env = {'EIO_CONNECTION_ERROR': '1', 'EIO_CORS': 'http://good.example',
           'EIO_LOG_LEVEL': 'INFO'}
    with start_server(request.param, env=env) as srv:
        yield srv


def calls(server: LiveServer, tag: str) -> list[tuple[int, object]]:
    """(code, message) of every handler call for a request whose query has ``tag``."""
    found = []
    for line in server.log().splitlines():
        if line.startswith('echo: connection_error ') and line.endswith(f'&tag={tag}'):
            code, rest = line[len('echo: connection_error '):].split(' ', 1)
            message = json.loads(rest[:rest.rindex(' ')])
            found.append((int(code), message))
    return found


def called_once(server: LiveServer, tag: str) -> tuple[int, object]:
    found = wait_until(lambda: calls(server, tag), message=f'the handler call for {tag}')
    assert len(found) == 1, found
    return found[0]


def tag() -> str:
    return f't{next(_tags)}'


@pytest.mark.parametrize(('query', 'method', 'status', 'code', 'message'), [
    ('EIO=4&transport=carrier-pigeon', 'GET', 400, 0, 'Transport unknown'),
    ('EIO=4&transport=polling&sid=nosuchsession', 'GET', 400, 1, 'Session ID unknown'),
    ('EIO=4&transport=polling', 'POST', 400, 2, 'Bad handshake method'),
    ('EIO=4&EIO=4&transport=polling', 'GET', 400, 3, 'Bad request'),
    ('EIO=3&transport=polling', 'GET', 400, 5, 'Unsupported protocol version'),
])
def test_each_refusal_calls_the_handler_with_its_code_and_message(
        server: LiveServer, query: str, method: str, status: int, code: int, message: str):
    t = tag()
    resp = http_request(server.port, method, f'/engine.io/?{query}&tag={t}', body=b'')
    expect_error(resp, status, code)
    assert json.loads(resp.body) == {'code': code, 'message': message}
    assert called_once(server, t) == (code, message)


def test_an_origin_refused_by_cors_calls_the_handler(server: LiveServer):
    t = tag()
    resp = http_request(server.port, 'GET', f'/engine.io/?EIO=4&transport=polling&tag={t}',
                        headers=[('Origin', 'http://evil.example')])
    expect_error(resp, 403, 4)
    assert called_once(server, t) == (4, 'Forbidden')


def test_a_refusing_connect_handler_calls_it_with_the_reason(server: LiveServer):
    t = tag()
    resp = http_request(server.port, 'GET',
                        f'/engine.io/?EIO=4&transport=polling&refuse=not-today&tag={t}')
    expect_error(resp, 403, 4)
    assert json.loads(resp.body)['message'] == 'not-today'
    assert called_once(server, t) == (4, 'not-today')


def test_a_refusal_inside_a_session_calls_the_handler(server: LiveServer):
    client = PollingClient(server)
    client.handshake()
    t = tag()
    # a binary POST body is no Engine.IO v4 payload
    resp = client.post(body=b'\x00', headers=[('Content-Type', 'application/octet-stream')],
                       extra=f'tag={t}')
    expect_error(resp, 400, 3)
    assert called_once(server, t) == (3, 'Bad request')


def test_a_refused_websocket_calls_the_handler(server: LiveServer):
    t = tag()
    ws = RawWebSocket(server.port, f'EIO=4&transport=websocket&sid=nosuchsession&tag={t}')
    try:
        assert ws.status == 400
    finally:
        ws.sock.close()
    assert called_once(server, t) == (1, 'Session ID unknown')


def test_an_accepted_request_calls_no_handler(server: LiveServer):
    t = tag()
    client = PollingClient(server)
    client.handshake(extra=f'tag={t}')
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket&tag={t}', timeout=5,
        suppress_origin=True)   # the page's own origin is not in this server's list
    try:
        assert ws.recv().startswith('0{')
    finally:
        ws.close()
    client.close()
    # a refusal after them is reported: had they been, their lines would be there first
    after = tag()
    expect_error(http_request(server.port, 'GET', f'/engine.io/?EIO=4&tag={after}'), 400, 0)
    called_once(server, after)
    assert calls(server, t) == []


def test_a_handler_that_raises_is_logged_and_the_client_still_answered(server: LiveServer):
    t = tag()
    mark = len(server.log())
    resp = http_request(server.port, 'GET',
                        f'/engine.io/?EIO=4&transport=carrier-pigeon&fail_handler=1&tag={t}')
    expect_error(resp, 400, 0)
    assert called_once(server, t) == (0, 'Transport unknown')
    wait_until(lambda: 'fails on purpose' in server.log()[mark:], message='the traceback')
    ours = server.log()[mark:]
    assert ours.count('connection_error handler failed') == 1, ours
    # the server goes on
    PollingClient(server).handshake()
