"""Parity on the wire: tests/apps/parity_app.py on python-engineio and on
engineio_wsgi, each under real gunicorn workers, with python-engineio's real
``Client`` and raw HTTP."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import engineio
import pytest
import websocket

from tests.live import LiveServer, http_request, start_server

from .engines import OURS, PYEIO
from .test_cookie import parse_cookie

KINDS = ('gunicorn-gthread', 'gunicorn-gevent')
#: python-engineio's gevent mode needs gevent-websocket's worker for WebSocket when
#: gevent-websocket is installed; its threading mode (simple-websocket) runs on
#: both workers, on greenlets under -k gevent, which monkey-patches the process
ASYNC_MODES = {(PYEIO, 'gunicorn-gthread'): 'threading', (PYEIO, 'gunicorn-gevent'): 'threading',
               (OURS, 'gunicorn-gthread'): 'threading', (OURS, 'gunicorn-gevent'): 'gevent'}
DEMO_PAGE = (Path(__file__).parents[2] / 'engineio_wsgi' / 'demo' / 'index.html').read_bytes()
WEBSOCKET_HEADERS = {'Upgrade': 'websocket', 'Connection': 'Upgrade',
                     'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
                     'Sec-WebSocket-Version': '13'}


@pytest.fixture(scope='module')
def servers() -> Iterator[dict[tuple[str, str], LiveServer]]:
    started: dict[tuple[str, str], LiveServer] = {}
    with contextlib.ExitStack() as stack:
        for kind in KINDS:
            for engine in (PYEIO, OURS):
                started[engine, kind] = stack.enter_context(start_server(
                    kind, 'tests.apps.parity_app:app', env={'EIO_PARITY_ENGINE': engine, 'EIO_ASYNC_MODE': ASYNC_MODES[engine, kind]}))
        yield started
        for server in started.values():
            assert 'Traceback' not in server.log(), server.log_tail()


def refusal(engine: str, status: int, body: bytes) -> object:
    """The refusal message, checked against each engine's form (see engines.py)."""
    if engine == PYEIO:
        assert status == 401, (status, body)
        return json.loads(body)
    assert status == 403, (status, body)
    parsed = json.loads(body)
    assert parsed['code'] == 4, parsed
    return parsed['message']


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('value, message', [
    ('go away', 'go away'), ({'reason': 'banned'}, {'reason': 'banned'}),
    (False, 'Unauthorized')])
def test_a_refusal_reaches_the_python_client(servers, kind, value, message):
    for engine in (PYEIO, OURS):
        client = engineio.Client()
        with pytest.raises(engineio.exceptions.ConnectionError) as info:
            client.connect(servers[engine, kind].url, transports=['polling'],
                           headers={'X-Refuse': json.dumps(value)})
        body = info.value.args[1]
        if engine == OURS:
            assert body['code'] == 4, body
            body = body['message']
        assert body == message, engine


@pytest.mark.parametrize('kind', KINDS)
def test_a_websocket_handshake_is_refused_before_the_upgrade(servers, kind):
    for engine in (PYEIO, OURS):
        res = http_request(servers[engine, kind].port, 'GET',
                           '/engine.io/?EIO=4&transport=websocket',
                           headers={**WEBSOCKET_HEADERS, 'X-Refuse': '{"reason": "ws"}'})
        assert refusal(engine, res.status, res.body) == {'reason': 'ws'}, engine


@pytest.mark.parametrize('kind', KINDS)
def test_a_star_in_the_origin_list_lets_a_websocket_in_from_anywhere(servers, kind):
    # websocket-client sends exactly one Origin (python-engineio's Client would add a second)
    for engine in (PYEIO, OURS):
        url = f'ws://127.0.0.1:{servers[engine, kind].port}/engine.io/?EIO=4&transport=websocket'
        ws = websocket.create_connection(url, timeout=10, origin='https://b.example')
        try:
            assert ws.recv().startswith('0{'), engine
            ws.send('4hello')
            assert ws.recv() == '4hello', engine
        finally:
            ws.close()


@pytest.mark.parametrize('kind', KINDS)
def test_the_cookie_callable_runs_at_each_handshake(servers, kind):
    for engine in (PYEIO, OURS):
        cookies = []
        for _ in range(2):
            res = http_request(servers[engine, kind].port, 'GET',
                               '/engine.io/?EIO=4&transport=polling')
            assert res.status == 200
            cookies.append(parse_cookie(res.header('Set-Cookie')))
        (name1, first), (name2, second) = cookies
        assert name1 == name2 == 'io'
        assert int(second.pop('max-age')) == int(first.pop('max-age')) + 1, engine
        assert first == second == {'path': '/', 'samesite': 'Lax', 'httponly': True}, engine


@pytest.mark.parametrize('kind', KINDS)
def test_static_files_and_404(servers, kind):
    for engine in (PYEIO, OURS):
        port = servers[engine, kind].port
        page = http_request(port, 'GET', '/demo/')
        assert (page.status, page.header('Content-Type'), page.body) == (
            200, 'text/html', DEMO_PAGE), engine
        for url in ('/demo/missing.js', '/demo/%2e%2e/%2e%2e/setup.cfg',
                    '/demo/..%2f..%2fsetup.cfg'):
            missing = http_request(port, 'GET', url)
            assert (missing.status, missing.header('Content-Type'), missing.body) == (
                404, 'text/plain', b'Not Found'), (engine, url)


@pytest.mark.parametrize('kind', KINDS)
def test_the_library_logs_through_the_applications_logger(servers, kind):
    for engine in (PYEIO, OURS):
        server = servers[engine, kind]
        res = http_request(server.port, 'GET', '/engine.io/?EIO=4&transport=polling')
        sid = json.loads(res.body[1:].split(b'\x1e')[0])['sid']
        assert server.wait_for_log(sid, timeout=5), engine
        lines = [line for line in server.log().splitlines() if sid in line]
        assert lines and all(line.startswith('APPLOG ') for line in lines), (engine, lines)


def test_a_refusal_after_gevent_websockets_101_closes_with_the_message():
    # gevent-websocket answers the handshake before the application runs:
    # the refusal can only be a close frame (1008), its reason the message
    with start_server('gunicorn-gws', 'tests.apps.parity_app:app',
                      env={'EIO_PARITY_ENGINE': OURS, 'EIO_ASYNC_MODE': 'gevent'}) as server:
        url = f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket'
        ws = websocket.create_connection(url, timeout=10, header=['X-Refuse: {"reason": "ws"}'])
        try:
            opcode, frame = ws.recv_data(control_frame=True)
        finally:
            ws.close()
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert (int.from_bytes(frame[:2], 'big'), json.loads(frame[2:])) == (1008, {'reason': 'ws'})
        assert 'Traceback' not in server.log(), server.log_tail()
