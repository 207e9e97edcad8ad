"""Fuzzing the whole WSGI pipeline in-process: random environs and bodies.

Every request, however malformed, must end in one of the statuses PROTOCOL.md
documents (errors as JSON ``{"code", "message"}``), never in an exception out
of the WSGI call, never in a hang; and the server must end up with no session
and no thread left. The profile is fixed (derandomized, bounded examples) so
that CI sees the same inputs every run.
"""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engineio_wsgi import Server, WSGIApp

pytestmark = pytest.mark.timeout(120)

STATUSES = {200, 204, 400, 403, 404, 413, 429, 503}
SID = '\x00SID\x00'          # replaced by the sid of the example's real session
CALL_BOUND = 3.0             # seconds one WSGI call may take (a GET waits 0.4 s at most)
SEEN: dict[int, int] = {}    # status -> how many fuzzed requests got it

FUZZ = settings(max_examples=1000, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def fallback(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'fallback']


@pytest.fixture(scope='module')
def pipeline():
    eio = Server(async_mode='threading', ping_interval=0.2, ping_timeout=0.2,
                 shutdown_timeout=0.1, max_http_buffer_size=2000, http_body_timeout=0.5,
                 max_sessions=300, max_sessions_per_client=250, message_rate_limit=(40, 1),
                 cors_allowed_origins=['http://ok.example'], max_queued_packets=100)

    @eio.on('message')
    def on_message(sid: str, data: str | bytes) -> None:
        if data == 'boom':
            raise RuntimeError('handler failure on purpose')
        try:
            eio.send(sid, data)
        except ValueError:       # text with \x1e to a polling session
            pass

    threads_before = threading.active_count()
    yield eio, WSGIApp(eio, fallback)
    eio.shutdown()
    assert eio.session_count() == 0
    deadline = time.monotonic() + 10
    while threading.active_count() > threads_before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before + 1, threading.enumerate()


def call(app: WSGIApp, environ: dict[str, Any]) -> tuple[str | None, list, bytes, int]:
    """Run one WSGI call in a thread with a deadline; (status, headers, body, calls)."""
    result: dict[str, Any] = {'calls': 0}

    def start_response(status: str, headers: list, exc_info: Any = None) -> Any:
        result['calls'] += 1
        result['status'], result['headers'] = status, headers
        return lambda data: None

    def run() -> None:
        try:
            iterable = app(environ, start_response)
            try:
                result['body'] = b''.join(iterable)
            finally:
                close = getattr(iterable, 'close', None)
                if close is not None:
                    close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result['error'] = exc
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(CALL_BOUND)
    assert not worker.is_alive(), f'WSGI call still running after {CALL_BOUND} s: {environ}'
    if 'error' in result:
        raise AssertionError(f'unhandled {result["error"]!r} for {environ}') from result['error']
    return result.get('status'), result.get('headers', []), result.get('body', b''), result['calls']


def base_environ(method: str, path: str, query: str, body: bytes) -> dict[str, Any]:
    return {
        'REQUEST_METHOD': method, 'SCRIPT_NAME': '', 'PATH_INFO': path, 'QUERY_STRING': query,
        'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '5000', 'SERVER_PROTOCOL': 'HTTP/1.1',
        'HTTP_HOST': '127.0.0.1:5000', 'REMOTE_ADDR': '127.0.0.1',
        'wsgi.version': (1, 0), 'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(body),
        'wsgi.errors': io.StringIO(), 'wsgi.multithread': True, 'wsgi.multiprocess': False,
        'wsgi.run_once': False,
    }


def open_session(app: WSGIApp, eio: Server) -> str | None:
    status, _, body, _ = call(app, base_environ('GET', '/engine.io/', 'EIO=4&transport=polling',
                                                b''))
    if status is None or not status.startswith('200'):
        return None          # a session limit: fine, the example runs without one
    sid = json.loads(body[1:].split(b'\x1e')[0])['sid']
    eio.send(sid, 'queued')  # a GET on this sid answers at once
    return sid


# -- strategies ----------------------------------------------------------------

values = st.one_of(
    st.sampled_from(['4', '3', '5', '', 'polling', 'websocket', SID, '1', 'true', '%', '%zz',
                     '4\x00', 'POLLING']),
    st.text(max_size=40),
)
names = st.one_of(st.sampled_from(['EIO', 'transport', 'sid', 'b64', 't', 'j', '', 'EIO ']),
                  st.text(max_size=8))
param = st.tuples(names, values, st.booleans())  # (name, value, percent-encode?)
# mostly well-formed queries with random extras, so requests get past the
# first checks and reach the session code
well_formed = st.builds(
    lambda transport, with_sid, extra: [('EIO', '4', False), ('transport', transport, False)]
    + ([('sid', SID, False)] if with_sid else []) + extra,
    st.sampled_from(['polling', 'polling', 'websocket']), st.booleans(),
    st.lists(param, max_size=2))
queries = st.one_of(
    well_formed, well_formed,
    st.lists(param, max_size=6),
    st.text(max_size=80).map(lambda t: [('', t, False)]),
)

packet_text = st.one_of(
    st.sampled_from(['4hi', '4', '3', '2', '2probe', '1', '6', '5', '0', '7', 'b', 'bAAE=',
                     'b!!', '4boom', '4a\x1eb', '']),
    st.text(max_size=30),
)
payloads = st.lists(packet_text, max_size=12).map(lambda ps: '\x1e'.join(ps).encode('utf-8'))
bodies = st.one_of(payloads, st.binary(max_size=300), st.just(b'4' + b'x' * 2500))

content_lengths = st.one_of(st.none(), st.just('actual'), st.just('actual+5'),
                            st.sampled_from(['', '0', '-1', 'abc', '1e3', '99999999999', ' 3']),
                            st.integers(0, 5000).map(str))

headers = st.fixed_dictionaries({}, optional={
    'HTTP_ORIGIN': st.one_of(st.sampled_from(['http://ok.example', 'http://evil.example', 'null',
                                              'http://ok.example', 'http://evil.example',
                                              'http://127.0.0.1:5000', 'x\r\ny', '']),
                             st.text(max_size=30)),
    'CONTENT_TYPE': st.sampled_from(['text/plain;charset=UTF-8', 'application/octet-stream',
                                     'text/html', '', 'application/octet-stream; x=1']),
    'HTTP_TRANSFER_ENCODING': st.sampled_from(['chunked', 'gzip, chunked', 'identity']),
    'HTTP_UPGRADE': st.sampled_from(['websocket', 'WebSocket', 'h2c']),
    'HTTP_CONNECTION': st.sampled_from(['Upgrade', 'keep-alive, Upgrade', 'close']),
    'HTTP_SEC_WEBSOCKET_KEY': st.sampled_from(['dGhlIHNhbXBsZSBub25jZQ==', 'bad']),
    'HTTP_SEC_WEBSOCKET_VERSION': st.sampled_from(['13', '8', '']),
    'HTTP_ACCEPT_ENCODING': st.sampled_from(['gzip', 'deflate;q=0.5, gzip;q=0', '*;q=x', '']),
    'HTTP_X_FORWARDED_FOR': st.text(max_size=30),
    'HTTP_ACCESS_CONTROL_REQUEST_HEADERS': st.text(max_size=20),
    'wsgi.input_terminated': st.booleans(),
})

requests = st.fixed_dictionaries({
    'method': st.one_of(st.sampled_from(['GET', 'POST', 'POST', 'OPTIONS', 'PUT', 'DELETE',
                                         'HEAD', 'PATCH', 'get', '']), st.text(max_size=6)),
    'path': st.sampled_from(['/engine.io/', '/engine.io', '/engine.io/x/y', '/other',
                             '/engine.iox']),
    'query': queries,
    'headers': headers,
    'body': bodies,
    'content_length': content_lengths,
})


def build_query(parts: list[tuple[str, str, bool]], sid: str | None) -> str:
    items = []
    for name, value, encode in parts:
        value = value.replace(SID, sid or 'nosuchsid')
        if encode:
            name, value = quote(name, safe=''), quote(value, safe='')
        items.append(f'{name}={value}' if name else value)
    return '&'.join(items)


def _req(method: str, body: bytes = b'', length: str | None = 'actual', **headers: Any) -> dict:
    return {'method': method, 'path': '/engine.io/', 'body': body, 'content_length': length,
            'query': [('EIO', '4', False), ('transport', 'polling', False), ('sid', SID, False)],
            'headers': headers}


@FUZZ
@given(req=requests)
@example(req=_req('POST', b'4' + b'x' * 2500))
@example(req=_req('POST', b'4x', '99999999999'))
@example(req=_req('POST', b'4x', None, HTTP_TRANSFER_ENCODING='chunked'))
@example(req=_req('OPTIONS', HTTP_ORIGIN='http://ok.example'))
@example(req=_req('GET', HTTP_ORIGIN='http://evil.example'))
def test_random_requests_get_documented_answers(pipeline, req):
    eio, app = pipeline
    sid = open_session(app, eio)
    body = req['body']
    environ = base_environ(req['method'], req['path'], build_query(req['query'], sid), body)
    environ.update(req['headers'])
    length = req['content_length']
    if length == 'actual':
        environ['CONTENT_LENGTH'] = str(len(body))
    elif length == 'actual+5':
        environ['CONTENT_LENGTH'] = str(len(body) + 5)
    elif length is not None:
        environ['CONTENT_LENGTH'] = length

    status, response_headers, response_body, calls = call(app, environ)

    assert calls == 1, f'start_response called {calls} times for {environ}'
    code = int(status.split()[0])
    SEEN[code] = SEEN.get(code, 0) + 1
    assert code in STATUSES, f'undocumented status {status} for {environ}'
    for name, value in response_headers:
        assert isinstance(name, str) and isinstance(value, str)
        assert not any(c in name + value for c in '\r\n\x00'), (name, value)
        value.encode('latin-1')
    if req['path'] not in ('/engine.io/', '/engine.io', '/engine.io/x/y'):
        assert (code, response_body) == (200, b'fallback')
        return
    if code >= 400:
        content_type = dict((k.lower(), v) for k, v in response_headers).get('content-type')
        assert content_type == 'application/json', (status, response_headers)
        error = json.loads(response_body)
        assert set(error) == {'code', 'message'} and isinstance(error['message'], str), error
        assert error['code'] in range(6), error
        if sid:
            assert sid not in response_body.decode(), 'an error body echoes the sid'
    elif (code == 200 and req['method'] == 'POST' and sid
          and f'sid={sid}' in environ['QUERY_STRING']):
        assert response_body == b'ok'


def test_fuzzed_sessions_all_end(pipeline):
    """Runs after the fuzzing: it reached deep into the pipeline, and every
    session it opened ends by itself."""
    eio, _ = pipeline
    assert {200, 204, 400, 403, 413} <= set(SEEN), SEEN
    deadline = time.monotonic() + 10
    while eio.session_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert eio.session_count() == 0
