"""Fuzzing the whole WSGI pipeline in-process: random environs and bodies.

Every request, however malformed, must end in one of the statuses PROTOCOL.md
documents (errors as JSON ``{"code", "message"}``), never in an exception out
of the WSGI call, never in a hang; and the server must end up with no session
and no thread left. The profile is fixed (derandomized, bounded examples) so
that CI sees the same inputs every run.

Header values are drawn as arbitrary text as well as near the valid ones
(``Origin``, ``Content-Length`` in other digits, with a sign or spaces), and
each request goes to one of several servers that differ only in
``cors_allowed_origins``: the same origin, ``'*'``, lists, and callables
taking the origin or the origin and the environ. Every response header must be
one a WSGI server can write (latin-1, no control character), and an Origin
that is malformed or not allowed is never echoed (no ``Access-Control-*``
header), while an allowed one gets its CORS headers on errors too.

The same requests also run with a real connection socket in the environ (one
end of a socket pair, as ``gunicorn.socket``; the other end plays the
client), so that the WebSocket takeover, the check for a client that went away
and the POST body watchdog are fuzzed too.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
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


# -- the servers: one per cors_allowed_origins policy ------------------------------

OK_ORIGIN = 'http://ok.example'
OWN_ORIGIN = 'http://127.0.0.1:5000'     # the Host of every fuzzed request
#: origins a callable policy was asked about (each checked, then cleared, per example)
asked: list[str] = []


def one_arg_rule(origin: str) -> bool:
    return origin in (OK_ORIGIN, 'null')


def two_arg_rule(origin: str, environ: dict[str, Any]) -> bool:
    return origin == OK_ORIGIN or (origin.startswith('https://')
                                   and environ.get('REQUEST_METHOD') == 'GET')


def one_arg(origin: str) -> bool:
    asked.append(origin)
    return one_arg_rule(origin)


def two_arg(origin: str, environ: dict[str, Any]) -> bool:
    asked.append(origin)
    return two_arg_rule(origin, environ)


POLICIES: dict[str, Any] = {
    'same-origin': None,
    'star': '*',
    'list': [OK_ORIGIN],
    'list-with-star': [OK_ORIGIN, '*'],
    'callable-origin': one_arg,
    'callable-origin-environ': two_arg,
}
RULES: dict[Any, Callable[..., bool]] = {one_arg: one_arg_rule, two_arg: two_arg_rule}


def make_server(http_body_timeout: float, cors: Any) -> Server:
    eio = Server(async_mode='threading', ping_interval=0.2, ping_timeout=0.2, upgrade_timeout=1.0,
                 shutdown_timeout=0.1, max_http_buffer_size=2000, http_body_timeout=http_body_timeout,
                 max_sessions=300, max_sessions_per_client=250, message_rate_limit=(40, 1),
                 cors_allowed_origins=cors, max_queued_packets=100)

    @eio.on('message')
    def on_message(sid: str, data: str | bytes) -> None:
        if data == 'boom':
            raise RuntimeError('handler failure on purpose')
        try:
            eio.send(sid, data)
        except ValueError:       # text with \x1e to a polling session
            pass
    return eio


Pipelines = dict[str, tuple[Server, WSGIApp]]


def run_pipelines(http_body_timeout: float) -> Iterator[Pipelines]:
    threads_before = threading.active_count()
    servers = {name: make_server(http_body_timeout, cors) for name, cors in POLICIES.items()}
    yield {name: (eio, WSGIApp(eio, fallback)) for name, eio in servers.items()}
    # every session the fuzzing opened ends by itself (heartbeat), before any shutdown
    wait_until(lambda: all(eio.session_count() == 0 for eio in servers.values()), timeout=10,
               message='all fuzzed sessions ended')
    for eio in servers.values():
        eio.shutdown()
    wait_until(lambda: threading.active_count() <= threads_before + 1, timeout=10,
               message=f'threads back to {threads_before} + 1')


@pytest.fixture(scope='module')
def pipelines() -> Iterator[Pipelines]:
    """Servers whose requests come without a socket (no WebSocket possible)."""
    yield from run_pipelines(http_body_timeout=0.5)


@pytest.fixture(scope='module')
def socket_pipelines() -> Iterator[Pipelines]:
    """Servers whose requests all come with a socket, from the first on.
    The body timeout is below the 0.4 s a session without pongs lives, so
    that the watchdog, not the heartbeat, ends a body that stops half-way
    (test_body_watchdog_outlives_a_session_closed_meanwhile covers the other order)."""
    yield from run_pipelines(http_body_timeout=0.25)


@pytest.fixture(scope='module')
def seen() -> Iterator[dict[int, int]]:
    """Status -> how many fuzzed requests got it; at the end: the fuzzing
    reached deep into the pipeline."""
    counts: dict[int, int] = {}
    yield counts
    assert {200, 204, 400, 403, 413} <= set(counts), counts


@pytest.fixture(scope='module')
def cors_seen() -> Iterator[dict[str, int]]:
    """'<policy> echoed' / '<policy> not echoed' -> count (requests with an
    Origin to Engine.IO paths); at the end: each policy both echoed an
    Origin and refused one."""
    counts: dict[str, int] = {}
    yield counts
    expected = {f'{name} {what}' for name in POLICIES for what in ('echoed', 'not echoed')}
    assert expected <= set(counts), sorted(counts.items())


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

# ten digits 0-9 in scripts str.isdigit() (and some of them int()) takes
DIGITS = ['0123456789', '\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669',
          '\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19',
          '\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079',
          '\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f']
# the body's real length (plus a delta), in some digits, between a prefix and a suffix
near_lengths = st.builds(
    lambda prefix, digits, delta, suffix: ('actual', prefix, digits, delta, suffix),
    st.sampled_from(['', '', ' ', '\t', '+', '-', '0', '00']), st.sampled_from(DIGITS),
    st.sampled_from([0, 0, 0, 1, -1, 5]), st.sampled_from(['', '', ' ', '\n', '.0', '_0', ',5']))
content_lengths = st.one_of(st.none(), st.just('actual'), st.just('actual+5'), near_lengths,
                            st.sampled_from(['', '0', '-1', 'abc', '1e3', '99999999999', ' 3',
                                             '\u00b2', '1_0', '+5', '\u0661\u0662', '0x10']),
                            st.integers(0, 5000).map(str), st.text(max_size=12))

# origins near valid ones: another case, a default or other port, a path, a
# character no header may carry, spaces
near_origins = st.builds(
    lambda prefix, base, suffix: prefix + base + suffix,
    st.sampled_from(['', '', '', ' ', '\x01', 'x']),
    st.sampled_from([OK_ORIGIN, 'HTTP://OK.EXAMPLE', OWN_ORIGIN, 'http://127.0.0.1', 'null',
                     'https://any.example', 'http://evil.example', 'http://[::1]:5000']),
    st.sampled_from(['', '', '', ':80', ':5000', '/', '/path', ' ', '\r\n', '\x00', '\x7f',
                     '\u00e9', '\u0100', '\ufeff', '%0d%0a']))
origins = st.one_of(
    st.sampled_from([OK_ORIGIN, 'http://evil.example', 'null', OWN_ORIGIN, 'https://any.example',
                     'http://ok.example:80', 'x\r\ny', '']),
    st.sampled_from([OK_ORIGIN, OWN_ORIGIN, 'https://any.example']),
    near_origins, near_origins, st.text(max_size=30))

headers = st.fixed_dictionaries({}, optional={
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
    'origin': st.one_of(st.none(), origins, origins),
    'cors': st.sampled_from(sorted(POLICIES)),
})


def build_query(parts: list[tuple[str, str, bool]], sid: str | None) -> str:
    items = []
    for name, value, encode in parts:
        value = value.replace(SID, sid or 'nosuchsid')
        if encode:
            name, value = quote(name, safe=''), quote(value, safe='')
        items.append(f'{name}={value}' if name else value)
    return '&'.join(items)


def _req(method: str, body: bytes = b'', length: Any = 'actual', cors: str = 'list',
         **headers: Any) -> dict:
    return {'method': method, 'path': '/engine.io/', 'body': body, 'content_length': length,
            'query': [('EIO', '4', False), ('transport', 'polling', False), ('sid', SID, False)],
            'headers': headers, 'cors': cors}


def environ_for(req: dict[str, Any], sid: str | None) -> dict[str, Any]:
    body = req['body']
    environ = base_environ(req['method'], req['path'], build_query(req['query'], sid), body)
    if req.get('origin') is not None:
        environ['HTTP_ORIGIN'] = req['origin']
    environ.update(req['headers'])
    length = req['content_length']
    if length == 'actual':
        environ['CONTENT_LENGTH'] = str(len(body))
    elif length == 'actual+5':
        environ['CONTENT_LENGTH'] = str(len(body) + 5)
    elif isinstance(length, tuple):
        _, prefix, digits, delta, suffix = length
        number = ''.join(digits[int(d)] for d in str(max(0, len(body) + delta)))
        environ['CONTENT_LENGTH'] = prefix + number + suffix
    elif length is not None:
        environ['CONTENT_LENGTH'] = length
    return environ


HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: what the test takes for an Origin that may be echoed at all (looser than
#: check 4: printable ASCII, a scheme); whatever else is never echoed
ECHOABLE = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*://[\x21-\x7e]+|null')
#: origins that pass check 4 (serialized origins): echoed whenever allowed
WELL_FORMED = {OK_ORIGIN, 'HTTP://OK.EXAMPLE', 'http://ok.example:80', OWN_ORIGIN,
               'http://127.0.0.1', 'http://127.0.0.1:80', 'null', 'https://any.example',
               'https://any.example:80', 'http://evil.example', 'http://evil.example:80',
               'http://[::1]:5000', 'http://[::1]:5000:80'}
_DEFAULT_PORT = {'http': '80', 'https': '443'}


def _same_origin(a: str, b: str) -> bool:
    """RFC 6454 comparison: case-insensitive, a default port is the same as none."""
    def plain(origin: str) -> str:
        origin = origin.lower()
        scheme = origin.partition('://')[0]
        port = _DEFAULT_PORT.get(scheme)
        return origin[:-len(port) - 1] if port and origin.endswith(':' + port) else origin
    return plain(a) == plain(b)


def policy_allows(policy: Any, origin: str, environ: dict[str, Any]) -> bool:
    """The policy's verdict on an origin that passes check 4 (PROTOCOL.md, CORS)."""
    if policy is None:
        return _same_origin(origin, OWN_ORIGIN)
    if policy == '*' or (isinstance(policy, list) and '*' in policy):
        return True
    if isinstance(policy, list):
        return any(_same_origin(origin, allowed) for allowed in policy)
    rule = RULES[policy]
    return rule(origin) if rule is one_arg_rule else rule(origin, environ)


def check_headers(response_headers: list) -> None:
    """Each header one a WSGI server can write: a token name, a latin-1 value
    without control characters (a tab aside)."""
    for name, value in response_headers:
        assert isinstance(name, str) and isinstance(value, str), (name, value)
        assert HEADER_NAME.fullmatch(name), name
        value.encode('latin-1')
        assert not any(unicodedata.category(c) == 'Cc' and c != '\t' for c in value), (name, value)


def check_cors(req: dict[str, Any], environ: dict[str, Any], code: int, response_headers: list,
               cors_seen: dict[str, int] | None) -> None:
    """An Origin is echoed only when well formed and allowed; then on errors too."""
    cors = [(n, v) for n, v in response_headers if n.lower().startswith('access-control-')
            or (n.lower() == 'vary' and 'origin' in v.lower())]
    origin = environ.get('HTTP_ORIGIN')
    if origin is None or req['path'] not in ENGINEIO_PATHS:
        assert cors == [], (cors, environ)
        return
    policy = POLICIES[req['cors']]
    allowed = ECHOABLE.fullmatch(origin) is not None and policy_allows(policy, origin, environ)
    if not allowed:
        assert cors == [], f'refused Origin {origin!r} echoed: {cors}'
        assert code in (400, 403), (code, environ)
    elif cors or origin in WELL_FORMED:
        expected = [('Access-Control-Allow-Origin', origin), ('Vary', 'Origin'),
                    ('Access-Control-Allow-Credentials', 'true')]
        if environ['REQUEST_METHOD'] == 'OPTIONS':     # a preflight, answered or refused
            assert cors[:4] == expected + [('Access-Control-Allow-Methods', 'GET, POST, OPTIONS')]
            requested = environ.get('HTTP_ACCESS_CONTROL_REQUEST_HEADERS')
            echoed = [('Access-Control-Allow-Headers', requested)]
            if requested and re.fullmatch(r'[A-Za-z0-9-]+(, ?[A-Za-z0-9-]+)*', requested):
                assert cors[4:] == echoed, (cors, environ)
            else:
                assert cors[4:] in ([], echoed), (cors, environ)
        else:
            assert cors == expected, (cors, environ)
    else:
        # allowed by the policy but refused by check 4 (e.g. a path after the host)
        assert code == 400, (code, environ)
    if cors_seen is not None:
        key = f"{req['cors']} {'echoed' if cors else 'not echoed'}"
        cors_seen[key] = cors_seen.get(key, 0) + 1


def check_asked() -> None:
    """A cors_allowed_origins callable is only ever asked about a well-formed Origin."""
    strays = [o for o in asked if not ECHOABLE.fullmatch(o)]
    asked.clear()
    assert strays == [], f'a cors_allowed_origins callable was asked about {strays!r}'


def check_answer(req: dict[str, Any], environ: dict[str, Any], sid: str | None, status: str,
                 response_headers: list, response_body: bytes, calls: int,
                 cors_seen: dict[str, int] | None = None) -> int:
    """The answer is one PROTOCOL.md documents; returns the status code."""
    assert calls == 1, f'start_response called {calls} times for {environ}'
    code = int(status.split()[0])
    assert code in STATUSES, f'undocumented status {status} for {environ}'
    check_headers(response_headers)
    check_cors(req, environ, code, response_headers, cors_seen)
    check_asked()
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
@example(req=_req('GET', cors='star', HTTP_ORIGIN='http://a\x01b'))
@example(req=_req('POST', b'4hello', '\u00b2'))
@example(req=_req('POST', b'4hello', ('actual', '', DIGITS[1], 0, '')))
def test_random_requests_get_documented_answers(pipelines, seen, cors_seen, req):
    eio, app = pipelines[req['cors']]
    sid = open_session(app, eio)
    environ = environ_for(req, sid)
    code = check_answer(req, environ, sid, *call(app, environ), cors_seen=cors_seen)
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
        'origin': st.one_of(st.none(), origins),
        'cors': st.sampled_from(sorted(POLICIES)),
    }),
    st.fixed_dictionaries({
        'method': st.sampled_from(['GET', 'POST']),
        'path': st.just('/engine.io/'),
        'query': st.just([('EIO', '4', False), ('transport', 'polling', False), ('sid', SID, False)]),
        'headers': st.just({}),
        'body': payloads,
        'content_length': st.just('actual'),
        'cors': st.sampled_from(sorted(POLICIES)),
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
def test_random_requests_on_a_real_socket(socket_pipelines, socket_seen, req, plan, queued):
    eio, app = socket_pipelines[req['cors']]
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
    check_asked()
    socket_seen[outcome] = socket_seen.get(outcome, 0) + 1


# -- pinned defects found by the real-socket fuzzing -------------------------------

def _socket_environ(method: str, query: str, server_end: socket.socket, **extra: Any) -> dict[str, Any]:
    environ = base_environ(method, '/engine.io/', query, b'')
    environ.update(extra)
    environ['gunicorn.socket'] = server_end
    environ['wsgi.input'] = server_end.makefile('rb')
    return environ


def test_handshake_to_a_gone_client_ends_like_a_dropped_connection(socket_pipelines):
    eio, app = socket_pipelines['list']
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
