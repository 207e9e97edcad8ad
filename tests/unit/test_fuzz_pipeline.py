"""Fuzzing the whole WSGI pipeline in-process: random environs and bodies.

Every request, however malformed, must end in one of the statuses PROTOCOL.md
documents (errors as JSON ``{"code", "message"}``), never in an exception out
of the WSGI call, never in a hang; and the server must end up with no session
and no thread left. The profile is fixed (derandomized, bounded examples) so
that CI sees the same inputs every run.

The same requests also run with a real connection socket in the environ (one
end of a socket pair, as ``gunicorn.socket``; the other end plays the
client), so that the WebSocket takeover, the check for a client that went away
and the POST body watchdog are fuzzed too.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engineio_wsgi import Server, WSGIApp
from engineio_wsgi.wsgi_servers import WebSocketTakenOver
from tests.live import wait_until
from tests.unit import wsframes

pytestmark = pytest.mark.timeout(120)

STATUSES = {200, 204, 400, 403, 404, 413, 429, 503}
SID = '\x00SID\x00'          # replaced by the sid of the example's real session
CALL_BOUND = 3.0             # seconds one WSGI call may take (a GET waits 0.4 s at most)
# with a socket: + the 3 s a server-side WebSocket close waits for a silent peer
SOCKET_CALL_BOUND = 5.0

FUZZ = settings(max_examples=1000, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
# with a socket some examples last up to a heartbeat or an upgrade timeout
FUZZ_SOCKET = settings(FUZZ, max_examples=250)


def fallback(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'fallback']


def run_pipeline(http_body_timeout: float) -> Iterator[tuple[Server, WSGIApp]]:
    eio = Server(async_mode='threading', ping_interval=0.2, ping_timeout=0.2, upgrade_timeout=1.0,
                 shutdown_timeout=0.1, max_http_buffer_size=2000, http_body_timeout=http_body_timeout,
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
    # every session the fuzzing opened ends by itself (heartbeat), before any shutdown
    wait_until(lambda: eio.session_count() == 0, timeout=10, message='all fuzzed sessions ended')
    eio.shutdown()
    wait_until(lambda: threading.active_count() <= threads_before + 1, timeout=10,
               message=f'threads back to {threads_before} + 1')


@pytest.fixture(scope='module')
def pipeline() -> Iterator[tuple[Server, WSGIApp]]:
    """A server whose requests come without a socket (no WebSocket possible)."""
    yield from run_pipeline(http_body_timeout=0.5)


@pytest.fixture(scope='module')
def socket_pipeline() -> Iterator[tuple[Server, WSGIApp]]:
    """A server whose requests all come with a socket, from the first on.
    The body timeout is below the 0.4 s a session without pongs lives, so
    that the watchdog, not the heartbeat, ends a body that stops half-way
    (test_body_watchdog_outlives_a_session_closed_meanwhile covers the other order)."""
    yield from run_pipeline(http_body_timeout=0.25)


@pytest.fixture(scope='module')
def seen() -> Iterator[dict[int, int]]:
    """Status -> how many fuzzed requests got it; at the end: the fuzzing
    reached deep into the pipeline."""
    counts: dict[int, int] = {}
    yield counts
    assert {200, 204, 400, 403, 413} <= set(counts), counts


@pytest.fixture(scope='module')
def socket_seen() -> Iterator[dict[str, int]]:
    """Outcome -> count for the real-socket fuzzing; at the end: takeover,
    upgrade, a client gone and the body watchdog were all reached."""
    counts: dict[str, int] = {}
    yield counts
    assert {'takeover', '200', '400', 'watchdog', 'gone'} <= set(counts), counts


def call(app: WSGIApp, environ: dict[str, Any],
         takeover: tuple[type[BaseException], ...] = (),
         bound: float = CALL_BOUND) -> tuple[str | None, list, bytes, int]:
    """Run one WSGI call in a thread with a deadline; (status, headers, body, calls).

    An exception in ``takeover`` (``WebSocketTakenOver``: a WebSocket owned
    the connection) is an outcome, with status None."""
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
            if not isinstance(exc, takeover):
                result['error'] = exc
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(bound)
    assert not worker.is_alive(), f'WSGI call still running after {bound} s: {environ}'
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


def open_session(app: WSGIApp, eio: Server, queued: bool = True, with_socket: bool = False) -> str | None:
    environ = base_environ('GET', '/engine.io/', 'EIO=4&transport=polling', b'')
    with contextlib.ExitStack() as stack:
        if with_socket:
            server_end, client_end = socket.socketpair()
            stack.callback(server_end.close)
            stack.callback(client_end.close)
            environ['gunicorn.socket'] = server_end
        status, _, body, _ = call(app, environ)
    if status is None or not status.startswith('200'):
        return None          # a session limit: fine, the example runs without one
    sid = json.loads(body[1:].split(b'\x1e')[0])['sid']
    if queued:
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


def environ_for(req: dict[str, Any], sid: str | None) -> dict[str, Any]:
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
    return environ


def check_answer(req: dict[str, Any], environ: dict[str, Any], sid: str | None, status: str,
                 response_headers: list, response_body: bytes, calls: int) -> int:
    """The answer is one PROTOCOL.md documents; returns the status code."""
    assert calls == 1, f'start_response called {calls} times for {environ}'
    code = int(status.split()[0])
    assert code in STATUSES, f'undocumented status {status} for {environ}'
    for name, value in response_headers:
        assert isinstance(name, str) and isinstance(value, str)
        assert not any(c in name + value for c in '\r\n\x00'), (name, value)
        value.encode('latin-1')
    if req['path'] not in ENGINEIO_PATHS:
        assert (code, response_body) == (200, b'fallback')
        return code
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
    return code


ENGINEIO_PATHS = ('/engine.io/', '/engine.io', '/engine.io/x/y')


@FUZZ
@given(req=requests)
@example(req=_req('POST', b'4' + b'x' * 2500))
@example(req=_req('POST', b'4x', '99999999999'))
@example(req=_req('POST', b'4x', None, HTTP_TRANSFER_ENCODING='chunked'))
@example(req=_req('OPTIONS', HTTP_ORIGIN='http://ok.example'))
@example(req=_req('OPTIONS', HTTP_ORIGIN='http://ok.example',
                  HTTP_ACCESS_CONTROL_REQUEST_HEADERS='\u0100'))
@example(req=_req('GET', HTTP_ORIGIN='http://evil.example'))
def test_random_requests_get_documented_answers(pipeline, seen, req):
    eio, app = pipeline
    sid = open_session(app, eio)
    environ = environ_for(req, sid)
    code = check_answer(req, environ, sid, *call(app, environ))
    seen[code] = seen.get(code, 0) + 1


# -- with a real socket ----------------------------------------------------------

# What the client end does with the request body (and WebSocket frames):
#   send       everything, then answers a WebSocket close frame as clients do
#   send-eof   everything, then closes its sending side
#   half       the first half, then waits (answering a close frame): the body
#              watchdog must cut a POST
#   silent     everything, then never answers: the server's close times out
#   gone       nothing: the client disconnected before the server looked
PLANS = ['send', 'send', 'send-eof', 'send-eof', 'half', 'half', 'gone', 'gone', 'silent']

_engineio_packets = st.sampled_from(['2probe', '5', '4hi', '3', '2', '1', '6', '0', '4boom', 'b', 'x',
                                     '3probe'])
_frames = st.one_of(
    _engineio_packets.map(lambda p: wsframes.encode(wsframes.TEXT, p.encode())),
    st.binary(max_size=20).map(lambda b: wsframes.encode(wsframes.BINARY, b)),
    st.just(wsframes.encode(wsframes.PING, b'x')),
    st.just(wsframes.encode(wsframes.CLOSE, wsframes.close_payload(1000))),
    st.just(wsframes.encode(wsframes.TEXT, b'4frag', fin=False)),
    st.just(wsframes.encode(wsframes.TEXT, b'4x' * 1500)),   # over max_http_buffer_size
    st.binary(min_size=1, max_size=12),                         # not a frame at all
)
websocket_bodies = st.lists(_frames, max_size=6).map(b''.join)
UPGRADE = {'HTTP_UPGRADE': 'websocket', 'HTTP_CONNECTION': 'Upgrade',
           'HTTP_SEC_WEBSOCKET_KEY': 'dGhlIHNhbXBsZSBub25jZQ==', 'HTTP_SEC_WEBSOCKET_VERSION': '13'}
# requests that mostly get past the first checks, on either transport
socket_requests = st.one_of(
    requests,
    st.fixed_dictionaries({
        'method': st.just('GET'),
        'path': st.just('/engine.io/'),
        'query': st.builds(lambda with_sid: [('EIO', '4', False), ('transport', 'websocket', False)]
                           + ([('sid', SID, False)] if with_sid else []), st.booleans()),
        'headers': st.just(UPGRADE),
        'body': websocket_bodies,
        'content_length': st.none(),
    }),
    st.fixed_dictionaries({
        'method': st.sampled_from(['GET', 'POST']),
        'path': st.just('/engine.io/'),
        'query': st.just([('EIO', '4', False), ('transport', 'polling', False), ('sid', SID, False)]),
        'headers': st.just({}),
        'body': payloads,
        'content_length': st.just('actual'),
    }),
)


class Client:
    """The client end of the connection: feeds it per the plan, keeps what the server wrote."""

    def __init__(self, sock: socket.socket, body: bytes, plan: str) -> None:
        self.sock = sock
        self.received = b''
        self.polite = plan in ('send', 'half')
        if plan == 'gone':
            sock.close()
            self.reader = None
            return
        sock.sendall(body if plan != 'half' else body[:len(body) // 2])
        if plan == 'send-eof':
            sock.shutdown(socket.SHUT_WR)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(65536):
                self.received += chunk
                if self.polite and self._server_closed():
                    self.polite = False
                    self.sock.sendall(wsframes.encode(wsframes.CLOSE, wsframes.close_payload(1000)))
                    self.sock.shutdown(socket.SHUT_WR)

    def _server_closed(self) -> bool:
        """A WebSocket close frame came after the 101."""
        head, sep, frames = self.received.partition(b'\r\n\r\n')
        return (sep == b'\r\n\r\n' and head.startswith(b'HTTP/1.1 101 ')
                and any(f.opcode == wsframes.CLOSE for f in wsframes.split_frames(frames)[0]))

    def finish(self) -> bytes:
        """Everything the server wrote, once the server end is closed."""
        if self.reader is not None:
            self.reader.join(CALL_BOUND)
            assert not self.reader.is_alive(), 'the server end still open after the call'
            self.sock.close()
        return self.received


@FUZZ_SOCKET
@given(req=socket_requests, plan=st.sampled_from(PLANS), queued=st.booleans())
@example(req=_req('POST', b'4hello', 'actual'), plan='half', queued=False)
@example(req=_req('GET'), plan='gone', queued=False)
@example(req={**_req('GET'), 'query': [('EIO', '4', False), ('transport', 'websocket', False),
                                       ('sid', SID, False)],
              'headers': UPGRADE, 'content_length': None,
              'body': wsframes.encode(wsframes.TEXT, b'2probe') + wsframes.encode(wsframes.TEXT, b'5')},
         plan='send-eof', queued=True)
def test_random_requests_on_a_real_socket(socket_pipeline, socket_seen, req, plan, queued):
    eio, app = socket_pipeline
    sid = open_session(app, eio, queued, with_socket=True)
    environ = environ_for(req, sid)
    server_end, client_end = socket.socketpair()
    server_end.settimeout(CALL_BOUND)     # as a WSGI server's connection timeout
    client = Client(client_end, req['body'], plan)
    environ['gunicorn.socket'] = server_end
    environ['wsgi.input'] = server_end.makefile('rb')
    started = time.monotonic()
    try:
        status, headers, body, calls = call(app, environ, takeover=(WebSocketTakenOver,),
                                            bound=SOCKET_CALL_BOUND)
    finally:
        environ['wsgi.input'].close()
        server_end.close()      # what the WSGI server does after the call
    wire = client.finish()
    if status is None:
        # the client was gone before the 101 could be written: the call ends
        # with the takeover signal (EPIPE) and nothing on the wire
        assert calls == 0, f'start_response called {calls} times on a takeover: {environ}'
        assert wire == b'', (wire[:200], environ)
        outcome = 'takeover'
    elif status.startswith('101 '):
        # a WebSocket took the connection over: it wrote the 101 itself; the
        # call then ends as an empty 101 response on the shut-down socket
        assert (calls, headers, body) == (1, [], b''), (calls, headers, body, environ)
        head, _, after = wire.partition(b'\r\n\r\n')
        assert head.startswith(b'HTTP/1.1 101 '), (wire[:200], environ)
        # after the 101, whole frames only: nothing cut off, nothing else written
        frames, rest = wsframes.split_frames(after)
        assert rest == b'', (frames[-3:], rest[:100], environ)
        outcome = 'takeover'
    else:
        # the application never writes on the socket: the WSGI server does
        assert wire == b'', (wire[:200], environ)
        code = check_answer(req, environ, sid, status, headers, body, calls)
        outcome = str(code)
        if plan == 'half' and code == 400 and time.monotonic() - started >= 0.25:
            socket_seen['watchdog'] = socket_seen.get('watchdog', 0) + 1
        if plan == 'gone' and req['method'] == 'GET' and code == 200:
            socket_seen['gone'] = socket_seen.get('gone', 0) + 1
    socket_seen[outcome] = socket_seen.get(outcome, 0) + 1


# -- pinned defects found by the real-socket fuzzing -------------------------------

def _socket_environ(method: str, query: str, server_end: socket.socket, **extra: Any) -> dict[str, Any]:
    environ = base_environ(method, '/engine.io/', query, b'')
    environ.update(extra)
    environ['gunicorn.socket'] = server_end
    environ['wsgi.input'] = server_end.makefile('rb')
    return environ


def test_handshake_to_a_gone_client_ends_like_a_dropped_connection(socket_pipeline):
    eio, app = socket_pipeline
    server_end, client_end = socket.socketpair()
    client_end.close()
    environ = _socket_environ('GET', 'EIO=4&transport=websocket', server_end, **UPGRADE)
    try:
        status, _, _, calls = call(app, environ, takeover=(WebSocketTakenOver,))
    finally:
        environ['wsgi.input'].close()
        server_end.close()
    # what every supported server takes as "client gone" (EPIPE), no response written
    assert (status, calls) == (None, 0)


def test_body_watchdog_outlives_a_session_closed_meanwhile():
    eio = Server(async_mode='threading', ping_interval=0.2, ping_timeout=0.2, http_body_timeout=0.8)
    app = WSGIApp(eio, fallback)
    try:
        sid = open_session(app, eio, queued=False, with_socket=True)
        server_end, client_end = socket.socketpair()
        server_end.settimeout(3)       # a WSGI server's own connection timeout
        client_end.sendall(b'4he')     # 3 of 6 bytes; the session dies of ping timeout at 0.4 s
        environ = _socket_environ('POST', f'EIO=4&transport=polling&sid={sid}', server_end,
                                  CONTENT_LENGTH='6')
        started = time.monotonic()
        try:
            status, _, _, _ = call(app, environ, bound=5)
        finally:
            environ['wsgi.input'].close()
            server_end.close()
            client_end.close()
        elapsed = time.monotonic() - started
        assert status is not None and status.startswith('400')
        assert elapsed < 0.8 + 0.5, f'the body read was cut after {elapsed:.1f} s, not at 0.8 s'
    finally:
        eio.shutdown()
