"""Hostile HTTP input: every bad request gets the status and code of PROTOCOL.md,
and a healthy polling session and a healthy WebSocket session opened before it
(``bystanders``) still echo afterwards, new handshakes still work, and the
server log has no traceback.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from urllib.parse import quote

import pytest

from tests.hostile.tools import Bystanders, RawWebSocket, close_code, open_websocket
from tests.live import (
    CLOSE,
    NOOP,
    PING,
    LiveServer,
    Packet,
    PollingClient,
    RawRequest,
    Response,
    decode_payload,
    expect_error,
    http_request,
    messages_received,
    wait_for_session,
)

EIO = '/engine.io/'


def handshake_target(extra: str = '') -> str:
    return f'{EIO}?EIO=4&transport=polling' + (f'&{extra}' if extra else '')


def no_injection(resp: Response) -> None:
    """No header the client tried to smuggle in, no client input echoed."""
    names = {name.lower() for name in resp.headers.keys()}
    assert 'set-cookie' not in names, f'cookie injected: {resp}'
    assert 'x-injected' not in names, f'header injected: {resp}'
    for value in resp.headers.values():
        assert 'evil' not in value.lower(), f'client input in a response header: {resp}'
    assert b'evil' not in resp.body.lower(), f'client input echoed in the body: {resp}'


# What the WSGI server's own HTTP parser does with input the application never
# sees: by parser family (gevent-websocket runs on gevent.pywsgi).
FAMILY = {'werkzeug': 'werkzeug', 'gunicorn-gthread': 'gunicorn', 'gunicorn-gevent': 'gunicorn',
          'pywsgi': 'pywsgi', 'pywsgi-gws': 'pywsgi', 'gunicorn-gws': 'pywsgi'}
SERVER_REFUSAL = None   # the WSGI server answered itself: an HTTP error, not our JSON


def status_and_code(resp: Response) -> tuple[int, int | None]:
    """(status, Engine.IO error code), or (status, SERVER_REFUSAL) for a non-JSON answer."""
    if resp.content_type.startswith('application/json'):
        return resp.status, expect_error(resp, resp.status, resp.json()['code'])['code']
    return resp.status, SERVER_REFUSAL


def opened(server: LiveServer) -> PollingClient:
    c = PollingClient(server)
    c.handshake()
    return c


# -- query strings -----------------------------------------------------------

@pytest.mark.parametrize('query, status, code', [
    ('EIO=4&EIO=4&transport=polling', 400, 3),
    ('EIO=4&transport=polling&transport=polling', 400, 3),
    ('EIO=4&transport=polling&transport=websocket', 400, 3),
    ('EIO=4&transport=polling&sid=a&sid=b', 400, 3),
    ('EIO=4&transport=polling&sid=&sid=', 400, 3),
    ('', 400, 5),
    ('EIO=', 400, 5),
    ('EIO=3&transport=polling', 400, 5),
    ('EIO=4.0&transport=polling', 400, 5),
    ('EIO=%34%00&transport=polling', 400, 5),
    ('EIO=4', 400, 0),
    ('EIO=4&transport=', 400, 0),
    ('EIO=4&transport=flash', 400, 0),
    ('EIO=4&transport=POLLING', 400, 0),
    ('EIO=4&transport=polling%00', 400, 0),
    ('%%%&&&===&EIO', 400, 5),
    ('EIO=4&transport=polling&sid=' + 'A' * 3000, 400, 1),
    ('EIO=4&transport=polling&sid=%ff%fe%00', 400, 1),
    ('EIO=4&transport=polling&sid=..%2F..%2Fetc%2Fpasswd', 400, 1),
])
def test_malformed_and_duplicated_query_parameters(bystanders: Bystanders, hostile_server,
                                                   query, status, code):
    for method in ('GET', 'POST'):
        resp = http_request(hostile_server.port, method, f'{EIO}?{query}', body=b'4x')
        expect_error(resp, status, code)
        no_injection(resp)
    bystanders.check()


def test_unknown_parameters_are_ignored_even_when_many_or_long(bystanders: Bystanders,
                                                               hostile_server):
    many = '&'.join(f'p{i}={i}' for i in range(300))
    long = 'x=' + 'y' * 3000
    for extra in (many, long, '&&&=&==&', 'b64=maybe', 'j=%zz'):
        c = PollingClient(hostile_server)
        c.handshake(extra=extra)
        c.send('hi')
        assert c.receive(1) == ['hi']
        c.close()
    bystanders.check()


def test_absurdly_long_query_is_refused_by_the_server(bystanders: Bystanders, hostile_server, kind):
    # past the WSGI server's request-line and header limits: its own 4xx, never a crash
    resp = http_request(hostile_server.port, 'GET', handshake_target('x=' + 'y' * 100_000))
    assert status_and_code(resp) == (414, SERVER_REFUSAL), resp
    resp = http_request(hostile_server.port, 'GET', handshake_target(),
                        headers={'X-Big': 'z' * 100_000})
    big_header = {'gunicorn': 431, 'werkzeug': 431, 'pywsgi': 400}[FAMILY[kind]]
    assert status_and_code(resp) == (big_header, SERVER_REFUSAL), resp
    bystanders.check()


# -- methods -----------------------------------------------------------------

@pytest.mark.parametrize('method', ['POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'TRACE', 'FOO'])
def test_every_wrong_handshake_method(bystanders: Bystanders, hostile_server, method):
    resp = http_request(hostile_server.port, method, handshake_target(), body=b'4x')
    if method == 'HEAD':
        assert resp.status == 400 and resp.body == b'', resp
    else:
        expect_error(resp, 400, 2)
    bystanders.check()


@pytest.mark.parametrize('method', ['PUT', 'DELETE', 'PATCH', 'TRACE', 'FOO'])
def test_every_wrong_method_on_a_session(bystanders: Bystanders, hostile_server, method):
    c = opened(hostile_server)
    resp = c.request(method, c.target(), body=b'4x')
    expect_error(resp, 400, 3)
    no_injection(resp)
    bystanders.check()
    c.close()


def test_options_preflight_opens_nothing(bystanders: Bystanders, hostile_server):
    before = len(hostile_server.log())
    for target in (handshake_target(), handshake_target('sid=' + secrets.token_urlsafe(15))):
        resp = http_request(hostile_server.port, 'OPTIONS', target,
                            headers={'Origin': hostile_server.origin,
                                     'Access-Control-Request-Method': 'POST'})
        assert resp.status == 204 and resp.body == b'', resp
    assert 'echo: connect' not in hostile_server.log()[before:]
    bystanders.check()


# -- sids --------------------------------------------------------------------

def test_unknown_foreign_and_expired_sids(bystanders: Bystanders, hostile_server, faults_server):
    port = hostile_server.port
    unknown = secrets.token_urlsafe(15)
    foreign = opened(faults_server).sid        # a real sid of another server
    ended = opened(hostile_server)
    ended.close()
    expired = opened(faults_server)            # times out after 0.5 + 0.5 s
    expired.expect_reason('ping timeout', timeout=5)
    for sid in (unknown, foreign, ended.sid):
        for method, body in (('GET', None), ('POST', b'4x')):
            resp = http_request(port, method, f'{handshake_target()}&sid={quote(sid)}', body=body)
            expect_error(resp, 400, 1)
            assert sid.encode() not in resp.body
    expect_error(expired.get(), 400, 1)
    expect_error(expired.post('late'), 400, 1)
    bystanders.check()


def test_sid_of_the_other_transport(bystanders: Bystanders, hostile_server):
    ws, sid = open_websocket(hostile_server)
    try:
        for method, body in (('GET', None), ('POST', b'4x')):
            resp = http_request(hostile_server.port, method, f'{handshake_target()}&sid={sid}',
                                body=body)
            expect_error(resp, 400, 3)
        # the WebSocket session carries on
        ws.send('4still')
        assert ws.recv() == '4still'
        # a second WebSocket for a WebSocket-only sid: 101, then closed at once
        raw = RawWebSocket(hostile_server.port, f'EIO=4&transport=websocket&sid={sid}')
        assert raw.status == 101, raw.head
        frames, eof = raw.read_until_end(timeout=5)
        assert close_code(frames) == 1008 and eof, frames
        raw.close()
        ws.send('4again')
        assert ws.recv() == '4again'
    finally:
        ws.close(timeout=0.5)
    bystanders.check()


# -- Content-Length, chunked, trickled and oversized bodies -----------------

def test_content_length_bigger_than_the_body(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    with RawRequest(hostile_server.port, 'POST', c.target(),
                    headers={'Content-Length': '100', 'Content-Type': 'text/plain'},
                    body_start=b'4short') as req:
        resp = req.response()                  # http_body_timeout is 1 s
    expect_error(resp, 400, 3)
    assert resp.elapsed < 5, resp
    c.expect_closed(reason='transport error')
    # the same, the client half-closing its side
    c = opened(hostile_server)
    with RawRequest(hostile_server.port, 'POST', c.target(),
                    headers={'Content-Length': '100', 'Content-Type': 'text/plain'},
                    body_start=b'4short') as req:
        req.sock.shutdown(socket.SHUT_WR)
        resp = req.response()
    expect_error(resp, 400, 3)
    c.expect_closed(reason='transport error')
    bystanders.check()


def test_content_length_smaller_than_the_body(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    resp = c.post(body=b'4hello\x1e4world', headers={'Content-Length': '6'})
    assert resp.status == 200 and resp.body == b'ok', resp
    assert c.receive(1) == ['hello']       # only what Content-Length covers
    c.close()
    bystanders.check()


@pytest.mark.parametrize('value', ['abc', '-1', '1e3', '0x10', '', '5, 5', '+6', '\xb2', '1\xb2',
                                   '99999999999999999999999'])
def test_content_length_not_a_number(bystanders: Bystanders, hostile_server, value):
    c = opened(hostile_server)
    resp = c.post(body=b'4hello', headers={'Content-Length': value})
    if value == '99999999999999999999999':
        # a number, only far too large
        expect_error(resp, 413, 3)
    elif resp.content_type.startswith('application/json'):
        expect_error(resp, 400, 3)
    else:
        # refused by the WSGI server itself before the application saw it
        assert resp.status == 400, resp
    no_injection(resp)
    bystanders.check()


def test_chunked_body_is_accepted(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    body = b'4chunked\x1e4body'
    chunked = b''.join(b'%x\r\n%s\r\n' % (len(p), p) for p in (body[:3], body[3:])) + b'0\r\n\r\n'
    resp = c.post(body=chunked, headers={'Transfer-Encoding': 'chunked'})
    assert resp.status == 200 and resp.body == b'ok', resp
    assert c.receive(2) == ['chunked', 'body']
    c.close()
    bystanders.check()


def test_chunked_body_over_the_limit(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    piece = b'4' + b'x' * 49_999
    chunks = b''.join(b'%x\r\n%s\r\n' % (len(piece), piece) for _ in range(6)) + b'0\r\n\r\n'
    resp = c.post(body=chunks, headers={'Transfer-Encoding': 'chunked'})
    expect_error(resp, 413, 3)
    c.expect_closed(reason='payload too large')
    bystanders.check()


def test_body_over_the_limit(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    resp = c.post(body=b'4' + b'x' * 200_000)     # one byte over maxPayload
    expect_error(resp, 413, 3)
    c.expect_closed(reason='payload too large')
    # a lying header announcing 2 GB and sending little
    c = opened(hostile_server)
    resp = c.post(body=b'4x', headers={'Content-Length': str(2 ** 31)})
    expect_error(resp, 413, 3)
    c.expect_closed(reason='payload too large')
    bystanders.check()


def test_trickling_bodies(bystanders: Bystanders, hostile_server):
    # within http_body_timeout (1 s): accepted
    c = opened(hostile_server)
    body = b'4trickled'
    with RawRequest(hostile_server.port, 'POST', c.target(),
                    headers={'Content-Length': str(len(body)),
                             'Content-Type': 'text/plain'}) as req:
        for byte in body:
            req.send(bytes([byte]))
            time.sleep(0.03)    # the scenario: a slow client, one byte every 30 ms
        resp = req.response()
    assert resp.status == 200 and resp.body == b'ok', resp
    assert c.receive(1) == ['trickled']
    c.close()
    # one byte every 0.2 s forever: dropped after about 1 s, session closed
    c = opened(hostile_server)
    with RawRequest(hostile_server.port, 'POST', c.target(),
                    headers={'Content-Length': '1000', 'Content-Type': 'text/plain'},
                    body_start=b'4') as req:
        result: list[Response] = []
        reader = threading.Thread(target=lambda: result.append(req.response()), daemon=True)
        reader.start()
        deadline = time.monotonic() + 8
        while reader.is_alive() and time.monotonic() < deadline:
            try:
                req.send(b'x')
            except OSError:
                break
            time.sleep(0.2)     # the scenario: one byte every 0.2 s
        reader.join(5)
    assert result, 'a trickling body was never cut off'
    expect_error(result[0], 400, 3)
    assert result[0].elapsed < 5, result[0]
    c.expect_closed(reason='transport error')
    bystanders.check()


# -- payload content ---------------------------------------------------------

@pytest.mark.parametrize('body', [
    b'4ok\x1e4\xff\xfe',                   # invalid UTF-8
    b'\xc3\x28',
    b'bAAA!',                              # invalid base64
    b'b====',
    b'bYQ',                                # missing padding
    b'\x1e4x',                             # record separators in odd places
    b'4x\x1e',
    b'4x\x1e\x1e4y',
    b'\x1e',
    b'\x1e\x1e\x1e',
    b'',                                   # empty packet / empty body
    b'7',                                  # unknown type digits
    b'9hello',
    b'x',
    b'-1',
    b'0',                                  # open from the client
    b'2',                                  # client ping
    b'2probe',
    b'4x\x1e2',
])
def test_bad_payloads_are_parse_errors(bystanders: Bystanders, hostile_server, body):
    c = opened(hostile_server)
    resp = c.post(body=body)
    expect_error(resp, 400, 3)
    # the session is gone at once; packets before the bad one still reached
    # the application
    c.expect_gone('parse error')
    before = ([repr(body.split(b'\x1e')[0][1:].decode())]
              if body.startswith((b'4x\x1e', b'4ok\x1e')) else [])
    assert messages_received(hostile_server, c.sid) == before
    bystanders.check()


def test_binary_content_type_is_refused(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    resp = c.post(body=b'4x', headers={'Content-Type': 'application/octet-stream'})
    expect_error(resp, 400, 3)
    c.expect_closed(reason='parse error')
    bystanders.check()


def test_harmless_packets_are_ignored(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    c.post_ok(Packet(NOOP), Packet('5'), Packet('3'), Packet('3', 'x'), Packet(NOOP, 'zz'))
    c.send('after')
    assert c.receive(1) == ['after']
    c.close()
    bystanders.check()


def test_ten_thousand_packets_in_one_post(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    messages = [str(i) for i in range(10_000)]
    c.post_ok(*messages, timeout=30)
    assert c.receive(10_000, timeout=60) == messages
    c.close()
    bystanders.check()


def test_many_concurrent_gets_on_one_sid(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    results: list[Response | Exception] = []

    def one_get() -> None:
        try:
            results.append(c.get(timeout=10))
        except Exception as exc:  # noqa: BLE001 - recorded and checked
            results.append(exc)
    threads = [threading.Thread(target=one_get) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(results) == 30 and all(isinstance(r, Response) for r in results), results
    codes = []
    close_packets = 0
    for resp in results:
        if resp.status == 200:
            packets = decode_payload(resp.body)
            assert {p.type for p in packets} <= {CLOSE, NOOP, PING}, resp
            close_packets += sum(p.type == CLOSE for p in packets)
        else:
            # which of the two a GET gets is decided by when it arrived: while the
            # session was open (a duplicate: code 3) or after the first duplicate
            # closed it (unknown sid: code 1)
            assert resp.status == 400, resp
            code = resp.json()['code']
            assert code in (1, 3), resp
            codes.append(expect_error(resp, 400, code)['code'])
    assert codes and set(codes) <= {1, 3} and 3 in codes, results
    # the one GET that was waiting receives the close packet, no other
    assert close_packets == 1, results
    c.expect_closed(reason='transport error')
    bystanders.check()


def test_concurrent_posts_on_one_sid(bystanders: Bystanders, hostile_server):
    c = opened(hostile_server)
    with RawRequest(hostile_server.port, 'POST', c.target(),
                    headers={'Content-Length': '10', 'Content-Type': 'text/plain'},
                    body_start=b'4') as slow:
        wait_for_session(hostile_server, c.sid, post_active=True)   # the first is reading its body
        resp = c.post('second')
        expect_error(resp, 400, 3)
        slow.send(b'123456789')
        first = slow.response()
    # the first POST is answered as usual (as the first of two GETs is), though
    # its session has ended meanwhile
    assert first.status == 200 and first.body == b'ok', first
    c.expect_closed(reason='transport error')
    bystanders.check()


# -- Origin and header injection --------------------------------------------

@pytest.mark.parametrize('origin', [
    'http://a.example/path', 'http://a b.example', 'http://a.example"', 'javascript:alert(1)',
    '<script>', 'http://a.example\x7f', '*', 'null null', 'http://\u00e9.example',
])
def test_bad_characters_in_origin(bystanders: Bystanders, hostile_server, kind, origin):
    resp = http_request(hostile_server.port, 'GET', handshake_target(),
                        headers={'Origin': origin.encode('utf-8').decode('latin-1')})
    if '\x7f' in origin and FAMILY[kind] == 'gunicorn':
        # gunicorn refuses a control character in a header value itself
        assert status_and_code(resp) == (400, SERVER_REFUSAL), resp
    else:
        expect_error(resp, 400, 3)
    assert resp.header('Access-Control-Allow-Origin') is None, resp
    bystanders.check()


def test_foreign_origin_is_forbidden(bystanders: Bystanders, hostile_server):
    resp = http_request(hostile_server.port, 'GET', handshake_target(),
                        headers={'Origin': 'http://evil.example'})
    expect_error(resp, 403, 4)
    no_injection(resp)
    bystanders.check()


@pytest.mark.parametrize('sid', [
    'x\r\nSet-Cookie: evil=1', 'x\r\nX-Injected: evil', 'x\nX-Injected: evil',
    'x\rX-Injected: evil', 'evil"; Path=/', 'x\r\n\r\n<html>evil',
])
def test_header_injection_through_the_sid(bystanders: Bystanders, hostile_server, sid):
    for method, body in (('GET', None), ('POST', b'4x')):
        resp = http_request(hostile_server.port, method,
                            f'{handshake_target()}&sid={quote(sid, safe="")}', body=body)
        expect_error(resp, 400, 1)
        no_injection(resp)
    raw = RawWebSocket(hostile_server.port, f'EIO=4&transport=websocket&sid={quote(sid, safe="")}')
    assert raw.status == 400, raw.head
    assert b'evil' not in raw.head.lower() and b'set-cookie' not in raw.head.lower(), raw.head
    raw.close()
    bystanders.check()


FOREIGN = (403, 4)           # the Origin before the line break: not allowed
INVALID = (400, 3)           # the folded line joined to the Origin: invalid characters
REFUSED = (400, SERVER_REFUSAL)


@pytest.mark.parametrize('origin, by_family', [
    ('http://evil.example\r\nSet-Cookie: evil=1',
     {'gunicorn': FOREIGN, 'werkzeug': FOREIGN, 'pywsgi': FOREIGN}),
    ('http://evil.example\r\nX-Injected: evil',
     {'gunicorn': FOREIGN, 'werkzeug': FOREIGN, 'pywsgi': FOREIGN}),
    ('http://evil.example\r\n Access-Control-Allow-Origin: *',   # obsolete line folding
     {'gunicorn': REFUSED, 'werkzeug': INVALID, 'pywsgi': INVALID}),
    ('http://evil.example\nX-Injected: evil',                     # bare LF
     {'gunicorn': REFUSED, 'werkzeug': FOREIGN, 'pywsgi': FOREIGN}),
    ('http://evil.example\rX-Injected: evil',                     # bare CR
     {'gunicorn': REFUSED, 'werkzeug': FOREIGN, 'pywsgi': FOREIGN}),
])
def test_header_injection_through_the_origin(bystanders: Bystanders, hostile_server, kind,
                                             origin, by_family):
    # the CR/LF are raw bytes in the request: each WSGI server's parser either
    # refuses the request itself or passes the part before them on as the Origin
    for target in (handshake_target(), f'{handshake_target()}&sid={opened(hostile_server).sid}'):
        resp = http_request(hostile_server.port, 'GET', target, headers={'Origin': origin})
        assert status_and_code(resp) == by_family[FAMILY[kind]], resp
        no_injection(resp)
        assert resp.header('Access-Control-Allow-Origin') is None, resp
    bystanders.check()


def test_cors_headers_are_never_built_from_other_input(bystanders: Bystanders, hostile_server):
    # a same-origin request with hostile Access-Control-Request-Headers
    resp = http_request(hostile_server.port, 'OPTIONS', handshake_target(),
                        headers={'Origin': hostile_server.origin,
                                 'Access-Control-Request-Headers': 'x-a\r\nX-Injected: evil'})
    # every parser ends the header at the line break: a valid preflight
    assert resp.status == 204, resp
    assert resp.header('X-Injected') is None, resp
    bystanders.check()


# -- abandoned handshakes ----------------------------------------------------

def test_hundreds_of_abandoned_handshakes_time_out(faults_server, fault_bystanders: Bystanders):
    from tests.hostile.tools import wait_sessions
    base = wait_sessions(faults_server, at_most=2)['sessions']   # the two bystanders
    sids = []
    for _ in range(300):
        resp = http_request(faults_server.port, 'GET', handshake_target())
        assert resp.status == 200, resp
        sids.append(json.loads(decode_payload(resp.body)[0].data)['sid'])
    sockets = []
    for _ in range(40):                         # below gthread's 50 threads
        raw = RawWebSocket(faults_server.port)
        assert raw.status == 101, raw.head
        frame = raw.read_frame()
        assert frame and frame[1].startswith(b'0'), frame
        sids.append(json.loads(frame[1][1:])['sid'])
        sockets.append(raw)                     # open, never answers a ping
    # ping interval + timeout is 1 s: every one of them is ended by the heartbeat
    wait_sessions(faults_server, at_most=base, timeout=20)
    reasons: dict[str, list[str]] = {}
    for line in faults_server.log().splitlines():
        if line.startswith('echo: disconnect '):
            _, _, sid, reason = line.split(' ', 3)
            reasons.setdefault(sid, []).append(reason)
    assert all(reasons.get(sid) == ['ping timeout'] for sid in sids), \
        [(sid, reasons.get(sid)) for sid in sids if reasons.get(sid) != ['ping timeout']][:5]
    for raw in sockets:
        raw.close()
    fault_bystanders.check()


def test_json_error_bodies_never_echo_input(hostile_server, bystanders: Bystanders):
    resp = http_request(hostile_server.port, 'GET',
                        f'{EIO}?EIO=evil&transport=evil&sid=evil')
    body = expect_error(resp, 400, 5)
    assert 'evil' not in json.dumps(body)
    bystanders.check()
