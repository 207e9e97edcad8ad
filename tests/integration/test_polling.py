"""Long-polling, from outside, with plain HTTP against real servers.

Each rule of the polling part of the protocol contract (handshake, validation
order, packets, payloads, duplicate requests, CORS, server-side close) is
checked on every server kind of the ``server`` fixture. The server runs the
echo app (tests/apps/echo.py) with a ping interval and timeout of 1 s.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import re
import socket
import time
import uuid

import pytest

from tests.live import (
    CLOSE,
    MESSAGE,
    NOOP,
    OPEN,
    PING,
    PONG,
    UPGRADE,
    LiveServer,
    Packet,
    PollingClient,
    RawRequest,
    Response,
    build_request,
    decode_payload,
    expect_error,
    messages_received,
    session_state,
    wait_for_session,
    wait_until,
    waiting_get,
)

pytestmark = pytest.mark.timeout(30)

SID = re.compile(r'[A-Za-z0-9_-]{16,}')
MAX_PAYLOAD = 1_000_000
# a pending long-poll answers within the ping interval (1 s); allow for slow machines
POLL_TIMEOUT = 5.0


def token() -> str:
    return 'tok' + uuid.uuid4().hex[:12]


def types(packets: list[Packet]) -> list[str]:
    return [p.type for p in packets]


def connect_count(server: LiveServer) -> int:
    return server.log().count('echo: connect ')


# --------------------------------------------------------------------------
# handshake


def test_handshake_open_packet(server: LiveServer) -> None:
    c = PollingClient(server)
    opened = c.handshake()
    try:
        assert set(opened) == {'sid', 'upgrades', 'pingInterval', 'pingTimeout', 'maxPayload'}
        assert opened['upgrades'] == ['websocket']
        for key, value in (('pingInterval', 1000), ('pingTimeout', 1000), ('maxPayload', MAX_PAYLOAD)):
            assert type(opened[key]) is int and opened[key] == value, (key, opened)
        assert isinstance(opened['sid'], str) and SID.fullmatch(opened['sid']), opened
        assert c.open_response is not None
        assert types(decode_payload(c.open_response.body)) == [OPEN]
    finally:
        c.close()


def test_handshake_headers(server: LiveServer) -> None:
    c = PollingClient(server)
    c.handshake()
    try:
        resp = c.open_response
        assert resp is not None
        assert resp.content_type == 'text/plain;charset=utf-8', resp
        assert 'no-store' in resp.header_values('Cache-Control'), resp
        assert resp.header('Set-Cookie') is None, 'cookie is off by default'
    finally:
        c.close()


def test_poll_response_headers(client: PollingClient) -> None:
    client.send('headers')
    resp = client.get(timeout=POLL_TIMEOUT)
    assert resp.status == 200, resp
    assert resp.content_type == 'text/plain;charset=utf-8', resp
    assert 'no-store' in resp.header_values('Cache-Control'), resp
    assert decode_payload(resp.body) == [Packet(MESSAGE, 'headers')]


def test_sids_are_unique(server: LiveServer) -> None:
    clients = [PollingClient(server) for _ in range(6)]
    try:
        sids = {c.handshake()['sid'] for c in clients}
        assert len(sids) == len(clients)
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize('path', ['/engine.io/', '/engine.io'])
def test_path_with_and_without_trailing_slash(server: LiveServer, path: str) -> None:
    c = PollingClient(server, path=path)
    c.handshake()
    try:
        c.send('path ' + path)
        assert c.receive(1) == ['path ' + path]
    finally:
        c.close()


def test_other_query_parameters_are_ignored(server: LiveServer) -> None:
    c = PollingClient(server)
    c.handshake(extra='t=PqR7xYz&foo=bar&j=0&EIO4=1')
    try:
        c.post_ok(Packet.message('extra params'), extra='t=abc&foo=')
        resp = c.get(timeout=POLL_TIMEOUT, extra='t=def&zzz')
        assert resp.status == 200, resp
        assert decode_payload(resp.body) == [Packet(MESSAGE, 'extra params')]
    finally:
        c.close()


# --------------------------------------------------------------------------
# validation order (no session, or a session that does not exist)

BOGUS_SID = 'QQsecretSidQQ'
BOGUS_TRANSPORT = 'qqbogusqq'

# (method, query, status, code); rows test both a check and its place in the order
VALIDATION = [
    # 1: a repeated EIO, transport or sid, before anything else
    ('GET', 'EIO=4&EIO=4&transport=polling', 400, 3),
    ('GET', 'EIO=4&transport=polling&transport=polling', 400, 3),
    ('GET', 'EIO=4&EIO=4', 400, 3),                                   # before: missing transport
    ('GET', 'EIO=3&EIO=3&transport=polling', 400, 3),                 # before: EIO version
    ('GET', f'EIO=4&transport=polling&transport={BOGUS_TRANSPORT}', 400, 3),
    ('GET', f'EIO=4&transport=polling&sid={BOGUS_SID}&sid={BOGUS_SID}', 400, 3),  # before: sid lookup
    ('POST', 'EIO=4&transport=polling&transport=polling', 400, 3),   # before: handshake method
    # 2: EIO missing or not 4
    ('GET', 'transport=polling', 400, 5),
    ('GET', 'EIO=3&transport=polling', 400, 5),
    ('GET', 'EIO=5&transport=polling', 400, 5),
    ('GET', 'EIO=&transport=polling', 400, 5),
    ('GET', 'EIO=four&transport=polling', 400, 5),
    ('GET', f'EIO=3&transport={BOGUS_TRANSPORT}', 400, 5),           # before: transport
    ('GET', 'EIO=3', 400, 5),
    ('POST', 'transport=polling', 400, 5),                            # before: handshake method
    # 3: transport missing or unknown
    ('GET', 'EIO=4', 400, 0),
    ('GET', f'EIO=4&transport={BOGUS_TRANSPORT}', 400, 0),
    ('GET', 'EIO=4&transport=', 400, 0),
    ('GET', 'EIO=4&transport=POLLING', 400, 0),
    ('GET', f'EIO=4&transport={BOGUS_TRANSPORT}&sid={BOGUS_SID}', 400, 0),  # before: sid lookup
    ('POST', f'EIO=4&transport={BOGUS_TRANSPORT}', 400, 0),            # before: handshake method
    # 6: unknown sid
    ('GET', f'EIO=4&transport=polling&sid={BOGUS_SID}', 400, 1),
    ('POST', f'EIO=4&transport=polling&sid={BOGUS_SID}', 400, 1),
    ('GET', f'EIO=4&transport=websocket&sid={BOGUS_SID}', 400, 1),   # before: no upgrade
    # 8: no sid and not GET
    ('POST', 'EIO=4&transport=polling', 400, 2),
    ('PUT', 'EIO=4&transport=polling', 400, 2),
    ('DELETE', 'EIO=4&transport=polling', 400, 2),
    ('POST', 'EIO=4&transport=websocket', 400, 2),                    # before: no upgrade
    # 9: websocket transport without an upgrade
    ('GET', 'EIO=4&transport=websocket', 400, 3),
]


@pytest.mark.parametrize(('method', 'query', 'status', 'code'), VALIDATION,
                         ids=[f'{m} {q} -> {c}' for m, q, _, c in VALIDATION])
def test_validation(server: LiveServer, method: str, query: str, status: int, code: int) -> None:
    c = PollingClient(server)
    body = b'4hello' if method in ('POST', 'PUT') else None
    before = connect_count(server)
    resp = c.request(method, f'/engine.io/?{query}', body, {'Content-Type': 'text/plain;charset=UTF-8'})
    expect_error(resp, status, code)
    # the error never repeats the client's input
    assert BOGUS_SID not in resp.text and BOGUS_TRANSPORT not in resp.text, resp
    assert connect_count(server) == before, 'a refused request reached the connect handler'


def test_duplicate_sid_of_live_session(client: PollingClient) -> None:
    assert client.sid
    resp = client.get(timeout=POLL_TIMEOUT, extra='sid=' + client.sid)
    expect_error(resp, 400, 3)
    assert client.sid not in resp.text


def test_error_never_echoes_real_sid(client: PollingClient) -> None:
    """A sid that once existed: after the session ended, 400 code 1 without the sid."""
    assert client.sid
    client.post_ok(Packet(CLOSE))
    for resp in (client.get(timeout=POLL_TIMEOUT), client.post('late')):
        expect_error(resp, 400, 1)
        assert client.sid not in resp.text, resp


# origin rules in the order

EVIL = 'http://evil.example'
# characters that are not in any serialized origin (gunicorn itself refuses control characters)
BAD_ORIGIN = 'http://evil.example"<script>'

ORIGIN_ORDER = [
    # (method, query, origin, status, code)
    ('GET', 'EIO=4&EIO=4&transport=polling', EVIL, 400, 3),           # duplicate before origin
    ('GET', 'EIO=3&transport=polling', EVIL, 400, 5),                 # version before origin
    ('GET', f'EIO=4&transport={BOGUS_TRANSPORT}', EVIL, 400, 0),      # transport before origin
    ('GET', f'EIO=4&transport={BOGUS_TRANSPORT}', BAD_ORIGIN, 400, 0),
    ('GET', 'EIO=4&transport=polling', BAD_ORIGIN, 400, 3),           # invalid characters
    ('POST', 'EIO=4&transport=polling', BAD_ORIGIN, 400, 3),          # before: method
    ('GET', f'EIO=4&transport=polling&sid={BOGUS_SID}', BAD_ORIGIN, 400, 3),  # before: sid
    ('GET', 'EIO=4&transport=polling', EVIL, 403, 4),
    ('GET', f'EIO=4&transport=polling&sid={BOGUS_SID}', EVIL, 403, 4),  # origin before sid
    ('POST', f'EIO=4&transport=polling&sid={BOGUS_SID}', EVIL, 403, 4),
    ('POST', 'EIO=4&transport=polling', EVIL, 403, 4),                # origin before method
    ('GET', 'EIO=4&transport=websocket', EVIL, 403, 4),               # origin before upgrade
]


@pytest.mark.parametrize(('method', 'query', 'origin', 'status', 'code'), ORIGIN_ORDER,
                         ids=[f'{m} {q} {o} -> {c}' for m, q, o, _, c in ORIGIN_ORDER])
def test_validation_with_origin(server: LiveServer, method: str, query: str, origin: str,
                                status: int, code: int) -> None:
    c = PollingClient(server)
    body = b'4hello' if method == 'POST' else None
    resp = c.request(method, f'/engine.io/?{query}', body, {'Origin': origin})
    expect_error(resp, status, code)
    assert BOGUS_SID not in resp.text and 'evil' not in resp.text, resp
    assert resp.header('Access-Control-Allow-Origin') is None, resp


def test_origin_with_control_character(server: LiveServer) -> None:
    c = PollingClient(server)
    resp = c.request('GET', '/engine.io/?EIO=4&transport=polling', headers={'Origin': 'http://a\x01b.example'})
    if server.kind.startswith('gunicorn'):
        # gunicorn answers 400 itself before the application sees the request
        assert resp.status == 400, resp
    else:
        expect_error(resp, 400, 3)


def test_unknown_sid_error_keeps_cors_headers(server: LiveServer) -> None:
    c = PollingClient(server)
    resp = c.request('GET', f'/engine.io/?EIO=4&transport=polling&sid={BOGUS_SID}',
                     headers={'Origin': server.origin})
    expect_error(resp, 400, 1)
    assert resp.header('Access-Control-Allow-Origin') == server.origin, resp
    assert resp.header('Access-Control-Allow-Credentials') == 'true', resp


# --------------------------------------------------------------------------
# POST and messages


def test_post_answers_ok(client: PollingClient) -> None:
    resp = client.post(Packet.message('hi'))
    assert resp.status == 200, resp
    assert resp.body == b'ok', resp
    assert resp.content_type == 'text/html', resp


TEXTS = [
    'hello',
    'héllo wörld — ünïcödé',
    'emoji 😀🎉 and 𝄞',
    '{"a": [1, 2.5, null], "b": "c"}',
    '[1,"2"]',
    '42',
    'true',
    'null',
    '"quoted"',
    '',
    '  spaces around  ',
    'line\nbreak\ttab\r\n',
    '4',
    '2',
    'b',
    'bAAAA',
    '\x00nul',
    'x' * 20_000,
]


@pytest.mark.parametrize('text', TEXTS, ids=[repr(t[:20]) for t in TEXTS])
def test_echo_text_verbatim(client: PollingClient, text: str) -> None:
    client.send(text)
    assert client.receive(1) == [text]


BINARIES = [b'', b'\x00', b'\x00\x01\xfe\xff', bytes(range(256)), b'4hello', bytes(range(256)) * 40]


@pytest.mark.parametrize('data', BINARIES, ids=[f'{len(b)} bytes' for b in BINARIES])
def test_echo_binary_base64(client: PollingClient, data: bytes) -> None:
    resp = client.post(body=b'b' + base64.b64encode(data))
    assert resp.status == 200 and resp.body == b'ok', resp
    # receive() decodes 'b' + strict standard base64 into bytes
    assert client.receive(1) == [data]


def test_binary_wire_format(client: PollingClient) -> None:
    data = bytes(range(250, 256)) + b'\xfb\xff'
    client.post_ok(body=b'b' + base64.b64encode(data))
    resp = client.get(timeout=POLL_TIMEOUT)
    assert resp.status == 200, resp
    assert resp.body == b'b' + base64.b64encode(data), resp


def test_several_packets_in_one_post(client: PollingClient) -> None:
    items: list[str | bytes] = ['one', b'\x01\x02', '', 'four 4', b'', '{"six": 6}']
    client.post_ok(*items)
    assert client.receive(len(items)) == items


def test_messages_keep_order_across_posts(client: PollingClient) -> None:
    items = [f'seq{i}' for i in range(12)]
    for item in items:
        client.send(item)
    assert client.receive(len(items)) == items


def test_pending_get_returns_as_soon_as_a_message_is_queued(client: PollingClient) -> None:
    pending = waiting_get(client, POLL_TIMEOUT)
    assert not pending.done(), f'GET returned early: {pending.result()}'
    posted = time.monotonic()
    client.send('wake up')
    resp = pending.result(POLL_TIMEOUT)
    assert pending.finished_at is not None
    assert pending.finished_at - posted < 0.5, f'GET answered {pending.finished_at - posted:.2f} s after the POST'
    assert decode_payload(resp.body) == [Packet(MESSAGE, 'wake up')], resp


def test_sessions_are_independent(server: LiveServer) -> None:
    a, b = PollingClient(server), PollingClient(server)
    a.handshake()
    b.handshake()
    try:
        a.send('for a')
        b.send('for b')
        assert b.receive(1) == ['for b']
        assert a.receive(1) == ['for a']
    finally:
        a.close()
        b.close()


def test_blocked_handler_does_not_delay_other_sessions(server: LiveServer) -> None:
    a, b = PollingClient(server), PollingClient(server)
    a.handshake()
    b.handshake()
    try:
        a.send('__block 1.5')
        assert server.wait_for_log(f"echo: message {a.sid} '__block 1.5'"), 'the handler did not start'
        started = time.monotonic()
        b.send('quick')
        assert b.receive(1, timeout=1.0) == ['quick']
        assert time.monotonic() - started < 1.0
        assert a.receive(1, timeout=5.0) == ['unblocked']
    finally:
        a.close()
        b.close()


def test_messages_wait_for_a_blocked_handler_in_order(client: PollingClient) -> None:
    client.send('__block 0.4')
    client.send('next')
    assert client.receive(2, timeout=5.0) == ['unblocked', 'next']


def test_chunked_post(client: PollingClient) -> None:
    body = b'4chunked\x1e4body'
    chunked = b'%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n' % (5, body[:5], len(body) - 5, body[5:])
    resp = client.post(body=chunked, headers={'Content-Type': 'text/plain;charset=UTF-8',
                                              'Transfer-Encoding': 'chunked'})
    assert resp.status == 200 and resp.body == b'ok', resp
    assert client.receive(2) == ['chunked', 'body']


def test_websocket_request_without_upgrade_on_polling_session(client: PollingClient) -> None:
    resp = client.request('GET', client.target(transport='websocket'), timeout=POLL_TIMEOUT)
    expect_error(resp, 400, 3)


def test_post_without_content_type(client: PollingClient) -> None:
    resp = client.request('POST', client.target(), b'4no type')
    assert resp.status == 200 and resp.body == b'ok', resp
    assert client.receive(1) == ['no type']


def test_compressed_poll_only_when_asked(client: PollingClient) -> None:
    """With the defaults (http_compression on, threshold 1,024 bytes) a 13 kB
    poll is gzipped for a client that accepts gzip, and only for it."""
    text = 'compressible ' * 1000
    client.send(text)
    resp = client.get(timeout=POLL_TIMEOUT, headers={'Accept-Encoding': 'gzip'})
    assert resp.status == 200, resp
    assert resp.header('Content-Encoding') == 'gzip', resp
    assert len(resp.body) < len(text) // 10, resp
    assert decode_payload(gzip.decompress(resp.body)) == [Packet(MESSAGE, text)]
    client.send(text)
    plain = client.get(timeout=POLL_TIMEOUT)
    assert plain.status == 200, plain
    assert plain.header('Content-Encoding') is None, plain
    assert decode_payload(plain.body) == [Packet(MESSAGE, text)]


def test_send_buffer_full_closes_the_session(server: LiveServer, client: PollingClient) -> None:
    """Past the outgoing limit (10,000 packets by default) the session ends."""
    client.send('__send 10100')
    assert server.wait_for_log(f'echo: disconnect {client.sid} send buffer full', timeout=10), \
        'session not closed with "send buffer full"'
    client.expect_closed()


def test_ignored_packets_in_post(client: PollingClient) -> None:
    """Unsolicited pong, upgrade and noop are ignored on polling; the message goes through."""
    client.post_ok(Packet(PONG), Packet(NOOP), Packet(UPGRADE), Packet.message('after'))
    assert client.receive(1) == ['after']


def test_max_packets_per_poll(client: PollingClient) -> None:
    client.send('__send 40')
    assert client.server is not None and client.sid
    server, sid = client.server, client.sid
    wait_until(lambda: session_state(server, sid)['queued'] >= 40, message='40 packets queued')
    received: list[str | bytes] = []
    sizes = []
    deadline = time.monotonic() + 10
    while len(received) < 40 and time.monotonic() < deadline:
        packets = client.poll(timeout=POLL_TIMEOUT)
        sizes.append(len(packets))
        assert len(packets) <= 16, f'{len(packets)} packets in one poll response'
        for p in packets:
            if p.type == PING:
                client.pong()
            elif p.type == MESSAGE:
                received.append(p.data)
            else:
                assert p.type == NOOP, packets
    assert received == [f'm{i}' for i in range(40)]
    assert sizes[0] == 16, sizes


# --------------------------------------------------------------------------
# bad POSTs close the session


def test_post_at_max_payload_is_accepted(client: PollingClient) -> None:
    body = b'4' + b'x' * (MAX_PAYLOAD - 1)
    client.post_ok(body=body, timeout=20)
    assert client.receive(1, timeout=10) == ['x' * (MAX_PAYLOAD - 1)]


def test_post_over_max_payload(client: PollingClient) -> None:
    body = b'4' + b'x' * MAX_PAYLOAD
    resp = client.post(body=body, timeout=20)
    expect_error(resp, 413, 3)
    client.expect_closed(reason='payload too large')


def test_max_payload_counts_bytes_not_characters(client: PollingClient) -> None:
    body = ('4' + 'é' * (MAX_PAYLOAD // 2)).encode()       # 1,000,001 bytes, 500,001 characters
    assert len(body) == MAX_PAYLOAD + 1
    expect_error(client.post(body=body, timeout=20), 413, 3)
    client.expect_closed(reason='payload too large')


def test_multibyte_body_at_max_payload_is_accepted(client: PollingClient) -> None:
    text = 'é' * (MAX_PAYLOAD // 2 - 1) + 'x'
    body = ('4' + text).encode()
    assert len(body) == MAX_PAYLOAD
    client.post_ok(body=body, timeout=20)
    assert client.receive(1, timeout=10) == [text]


def test_errors_inside_a_session_keep_cors_headers(server: LiveServer) -> None:
    for body, headers, status in (
        (b'4' + b'x' * MAX_PAYLOAD, {}, 413),
        (b'4x', {'Content-Type': 'application/octet-stream'}, 400),
        (b'7bad', {}, 400),
    ):
        c = PollingClient(server, headers={'Origin': server.origin})
        c.handshake()
        resp = c.post(body=body, headers=headers, timeout=20)
        expect_error(resp, status, 3)
        _cors_ok(resp, server.origin)
        resp = c.get(timeout=POLL_TIMEOUT)
        expect_error(resp, 400, 1)
        _cors_ok(resp, server.origin)


def test_post_over_max_payload_refused_by_content_length(client: PollingClient) -> None:
    """The declared length alone is enough: 413 without waiting for a body that never comes."""
    headers = {'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': str(2 * MAX_PAYLOAD)}
    with RawRequest(client.port, 'POST', client.target(), headers, body_start=b'4xx', timeout=5) as req:
        expect_error(req.response(), 413, 3)
    client.expect_closed(reason='payload too large')


@pytest.mark.parametrize('declared', ['\xb2', '\xb9', '1\xb2'])
def test_content_length_of_digits_that_are_not_ascii(server: LiveServer, client: PollingClient,
                                                     declared: str) -> None:
    """Latin-1 superscripts (one byte each on the wire): str.isdigit() is true
    for them, int() refuses them. werkzeug hands them to the application, which
    answers 400 code 3 as for any bad length; gunicorn and gevent.pywsgi refuse
    the request themselves, so the session never sees it."""
    resp = client.post(body=b'4hello', headers={'Content-Length': declared})
    if server.kind == 'werkzeug':
        expect_error(resp, 400, 3)
        client.expect_closed(reason='parse error')
    else:
        assert resp.status == 400 and not resp.content_type.startswith('application/json'), resp
        client.send('still open')
        assert client.receive(1) == ['still open']


def test_chunked_post_over_max_payload(client: PollingClient) -> None:
    size = MAX_PAYLOAD + 10
    body = b'4' + b'y' * (size - 1)
    chunked = b'%x\r\n%s\r\n0\r\n\r\n' % (size, body)
    resp = client.post(body=chunked, timeout=20, headers={'Content-Type': 'text/plain;charset=UTF-8',
                                                          'Transfer-Encoding': 'chunked'})
    expect_error(resp, 413, 3)
    client.expect_closed(reason='payload too large')


def _stalled_post(server: LiveServer) -> tuple[Response | None, float]:
    """A POST whose body stops after 8 of 100 bytes: (the answer or None if the
    connection was closed without one, seconds until then)."""
    c = PollingClient(server)
    c.handshake()
    headers = {'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': '100'}
    with RawRequest(c.port, 'POST', c.target(), headers, body_start=b'4stalled', timeout=5) as req:
        try:
            return req.response(), time.monotonic() - req.started
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None, time.monotonic() - req.started


def test_post_body_that_never_arrives_is_dropped(body_timeout_server: LiveServer) -> None:
    """http_body_timeout=0.5: a stalled body is dropped in bounded time; the server goes on."""
    _, elapsed = _stalled_post(body_timeout_server)
    assert elapsed < 2.5, f'stalled body dropped after {elapsed:.2f} s'
    other = PollingClient(body_timeout_server)
    other.handshake()
    other.send('server still fine')
    assert other.receive(1) == ['server still fine']
    other.close()


def test_post_body_that_never_arrives_gets_400(body_timeout_server: LiveServer) -> None:
    resp, elapsed = _stalled_post(body_timeout_server)
    assert resp is not None, f'connection closed after {elapsed:.2f} s without the 400'
    assert resp.status == 400, resp


def test_octet_stream_post(client: PollingClient) -> None:
    resp = client.post(Packet.message('hello'), headers={'Content-Type': 'application/octet-stream'})
    expect_error(resp, 400, 3)
    client.expect_closed()


# After a parse error the session is gone at once (PROTOCOL.md, "What each
# client packet does"): the very next GET answers 400 code 1, as the official
# v4 suite checks ("closes the session upon invalid packet format").


def test_client_ping_in_post_is_a_parse_error(client: PollingClient) -> None:
    expect_error(client.post(Packet(PING)), 400, 3)
    client.expect_gone('parse error')


def test_client_ping_probe_in_post_is_a_parse_error(client: PollingClient) -> None:
    expect_error(client.post(Packet(PING, 'probe')), 400, 3)
    client.expect_gone('parse error')


def test_client_open_in_post_is_a_parse_error(client: PollingClient) -> None:
    expect_error(client.post(Packet(OPEN)), 400, 3)
    client.expect_gone('parse error')


def test_a_post_after_a_parse_error_is_refused(client: PollingClient) -> None:
    expect_error(client.post(body=b'7bad'), 400, 3)
    expect_error(client.post(Packet.message('late')), 400, 1)
    client.expect_gone('parse error')


BAD_BODIES = [
    b'7hello',            # unknown type digit
    b'9',
    b'x',
    b'0',                 # open from a client
    b'0{"sid": "x"}',
    b'bAAA',              # base64 without its padding
    b'b@@@@',             # not base64
    b'bAA=A',
    b'4\xff\xfe',         # not UTF-8
    b'',                  # empty body
    b'4a\x1e\x1e4b',      # empty packet between separators
    b'4a\x1e',            # empty packet at the end
    b'\x1e4a',            # empty packet at the start
    b'\x1e',              # a separator alone
    b'4a\x1e\x1e4b\x1e4c',  # the packet after the empty one never reaches the app
    '\u06634hello'.encode(),  # a type digit that is a digit, but not ASCII
    '\u0663hello'.encode(),   # (Arabic-Indic three)
    '\uff14hello'.encode(),   # (fullwidth four)
    b'4a\x1e\xff',         # not UTF-8 after a good packet
    b'4a\x1ebAA=A',         # bad base64 after a good packet
]


@pytest.mark.parametrize('body', BAD_BODIES, ids=[repr(b) for b in BAD_BODIES])
def test_undecodable_post(server: LiveServer, client: PollingClient, body: bytes) -> None:
    expect_error(client.post(body=body), 400, 3)
    client.expect_gone('parse error')
    # the packets before the bad one reached the application, and only those
    reached = ["'a'"] if body.startswith(b'4a\x1e') else []
    assert messages_received(server, client.sid) == reached


def test_packets_before_a_bad_one_reach_the_app(server: LiveServer, client: PollingClient) -> None:
    first, second, after = token(), token(), token()
    body = f'4{first}\x1e4{second}\x1e7bad\x1e4{after}'.encode()
    expect_error(client.post(body=body), 400, 3)
    client.expect_gone('parse error')
    assert messages_received(server, client.sid) == [repr(first), repr(second)]
    assert after not in server.log(), 'a packet after the bad one reached the app'


def test_a_get_waiting_during_a_parse_error_gets_the_queued_packets_then_close(
        server: LiveServer, client: PollingClient) -> None:
    """Only a GET already waiting hears of the end: what was queued, then ``1``."""
    waiting = waiting_get(client, POLL_TIMEOUT)
    expect_error(client.post(body=b'4a\x1e7bad'), 400, 3)
    resp = waiting.result(POLL_TIMEOUT)
    assert resp.status == 200, resp
    # (a ping may fall in between on a slow machine: the heartbeat runs on)
    packets = [p for p in decode_payload(resp.body) if p.type != PING]
    assert packets == [Packet.message('a'), Packet(CLOSE)]
    client.expect_gone('parse error')


# --------------------------------------------------------------------------
# duplicate requests


def test_duplicate_get(client: PollingClient) -> None:
    first = waiting_get(client, POLL_TIMEOUT)
    second = client.get(timeout=POLL_TIMEOUT)
    expect_error(second, 400, 3)
    resp = first.result(POLL_TIMEOUT)
    assert resp.status == 200, resp
    assert types(decode_payload(resp.body)) == [CLOSE], resp
    client.expect_closed(reason='transport error')


def test_duplicate_post(client: PollingClient) -> None:
    """A POST still receiving its body; a second POST is a duplicate."""
    headers = {'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': '40'}
    with RawRequest(client.port, 'POST', client.target(), headers, body_start=b'4slow', timeout=10):
        assert client.server is not None and client.sid
        wait_for_session(client.server, client.sid, post_active=True)
        expect_error(client.post(Packet.message('second')), 400, 3)
        client.expect_closed(reason='transport error')


# --------------------------------------------------------------------------
# close from the client


def test_client_close_with_pending_get(client: PollingClient) -> None:
    pending = waiting_get(client, POLL_TIMEOUT)
    client.post_ok(Packet(CLOSE))
    resp = pending.result(POLL_TIMEOUT)
    assert resp.status == 200, resp
    # the contract: the pending GET ends with a noop (the client asked to close)
    assert types(decode_payload(resp.body)) == [NOOP], resp
    expect_error(client.get(timeout=POLL_TIMEOUT), 400, 1)
    expect_error(client.post(Packet.message('late')), 400, 1)
    client.expect_reason('client disconnect')


def test_client_close_without_pending_get(client: PollingClient) -> None:
    client.post_ok(Packet(CLOSE))
    expect_error(client.get(timeout=POLL_TIMEOUT), 400, 1)
    expect_error(client.post(Packet.message('late')), 400, 1)
    client.expect_reason('client disconnect')


def test_messages_before_close_in_same_post_reach_the_app(server: LiveServer, client: PollingClient) -> None:
    word = token()
    client.post_ok(Packet.message(word), Packet(CLOSE))
    assert server.wait_for_log(f"message {client.sid} '{word}'")
    expect_error(client.get(timeout=POLL_TIMEOUT), 400, 1)


# --------------------------------------------------------------------------
# CORS and Origin (default: same origin only)


def _cors_ok(resp, origin: str) -> None:
    assert resp.header('Access-Control-Allow-Origin') == origin, resp
    assert 'origin' in [v.lower() for v in resp.header_values('Vary')], resp
    assert resp.header('Access-Control-Allow-Credentials') == 'true', resp


def test_same_origin_is_allowed(server: LiveServer) -> None:
    c = PollingClient(server, headers={'Origin': server.origin})
    c.handshake()
    try:
        assert c.open_response is not None
        _cors_ok(c.open_response, server.origin)
        resp = c.post(Packet.message('cors'))
        assert resp.status == 200 and resp.body == b'ok', resp
        _cors_ok(resp, server.origin)
        resp = c.get(timeout=POLL_TIMEOUT)
        assert decode_payload(resp.body) == [Packet(MESSAGE, 'cors')], resp
        _cors_ok(resp, server.origin)
    finally:
        c.close()


def test_no_origin_is_allowed(server: LiveServer) -> None:
    c = PollingClient(server)
    c.handshake()
    c.close()


@pytest.mark.parametrize('origin', [
    EVIL,
    'http://localhost:{port}',
    'http://127.0.0.1:1',
    'https://127.0.0.1:{port}',
    'http://127.0.0.1',
    'null',
])
def test_other_origin_is_forbidden(server: LiveServer, origin: str) -> None:
    origin = origin.format(port=server.port)
    before = connect_count(server)
    resp = PollingClient(server).request('GET', '/engine.io/?EIO=4&transport=polling',
                                         headers={'Origin': origin})
    expect_error(resp, 403, 4)
    assert resp.header('Access-Control-Allow-Origin') is None, resp
    assert connect_count(server) == before


def test_other_origin_is_forbidden_inside_a_session(server: LiveServer, client: PollingClient) -> None:
    expect_error(client.post(Packet.message('x'), headers={'Origin': EVIL}), 403, 4)
    expect_error(client.get(timeout=POLL_TIMEOUT, headers={'Origin': EVIL}), 403, 4)


@pytest.mark.parametrize(('forwarded', 'origin', 'allowed'), [
    ({'X-Forwarded-Host': 'chat.example.com', 'X-Forwarded-Proto': 'https'}, 'https://chat.example.com', True),
    ({'X-Forwarded-Host': 'chat.example.com', 'X-Forwarded-Proto': 'https'}, 'http://chat.example.com', False),
    ({'X-Forwarded-Host': 'chat.example.com'}, 'http://chat.example.com', True),
    ({'X-Forwarded-Host': 'chat.example.com:8443', 'X-Forwarded-Proto': 'https'},
     'https://chat.example.com:8443', True),
    ({'X-Forwarded-Proto': 'https'}, 'https://127.0.0.1:{port}', True),
    ({'X-Forwarded-Host': 'chat.example.com', 'X-Forwarded-Proto': 'https'}, 'http://127.0.0.1:{port}', False),
    ({}, 'https://chat.example.com', False),
], ids=['host+proto', 'scheme mismatch', 'host only', 'host with port', 'proto only',
        'real host no longer counts', 'no forwarding'])
def test_forwarded_host_and_proto(server: LiveServer, forwarded: dict[str, str], origin: str,
                                  allowed: bool) -> None:
    origin = origin.format(port=server.port)
    headers = {**forwarded, 'Origin': origin}
    c = PollingClient(server, headers=headers)
    if allowed:
        c.handshake()
        try:
            assert c.open_response is not None
            _cors_ok(c.open_response, origin)
        finally:
            c.close()
    else:
        expect_error(c.request('GET', '/engine.io/?EIO=4&transport=polling'), 403, 4)


def test_preflight(server: LiveServer) -> None:
    before = connect_count(server)
    resp = PollingClient(server).request('OPTIONS', '/engine.io/?EIO=4&transport=polling', headers={
        'Origin': server.origin,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type, x-requested-with',
    })
    assert resp.status == 204, resp
    assert resp.body == b'', resp
    _cors_ok(resp, server.origin)
    methods = {m.upper() for m in resp.header_values('Access-Control-Allow-Methods')}
    assert {'GET', 'POST', 'OPTIONS'} <= methods, resp
    allowed = [h.lower() for h in resp.header_values('Access-Control-Allow-Headers')]
    assert allowed == ['content-type', 'x-requested-with'], resp
    assert resp.header('Set-Cookie') is None, resp
    # a handshake runs the connect handler (which logs) before it answers: had
    # the preflight opened a session, the line would be in the log by now
    assert connect_count(server) == before, 'a preflight opened a session'


def test_preflight_with_sid_leaves_session_alone(server: LiveServer, client: PollingClient) -> None:
    resp = client.request('OPTIONS', client.target(), headers={
        'Origin': server.origin, 'Access-Control-Request-Method': 'POST'})
    assert resp.status == 204, resp
    _cors_ok(resp, server.origin)
    client.send('still here')
    assert client.receive(1) == ['still here']


def test_cors_any_origin(cors_star_server: LiveServer) -> None:
    origin = 'http://anything.example'
    c = PollingClient(cors_star_server, headers={'Origin': origin})
    c.handshake()
    try:
        assert c.open_response is not None
        _cors_ok(c.open_response, origin)     # echoed, never '*' with credentials
        c.send('star')
        resp = c.get(timeout=POLL_TIMEOUT)
        assert decode_payload(resp.body) == [Packet(MESSAGE, 'star')], resp
        _cors_ok(resp, origin)
        pre = c.request('OPTIONS', c.target(), headers={
            'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-custom'})
        assert pre.status == 204, pre
        _cors_ok(pre, origin)
        assert [h.lower() for h in pre.header_values('Access-Control-Allow-Headers')] == ['x-custom'], pre
    finally:
        c.close()


def test_cors_any_origin_still_rejects_invalid_origin(cors_star_server: LiveServer) -> None:
    resp = PollingClient(cors_star_server).request(
        'GET', '/engine.io/?EIO=4&transport=polling', headers={'Origin': BAD_ORIGIN})
    expect_error(resp, 400, 3)


def test_cors_list(cors_list_server: LiveServer) -> None:
    for origin in ('http://a.example', 'https://b.example:8443'):
        c = PollingClient(cors_list_server, headers={'Origin': origin})
        c.handshake()
        assert c.open_response is not None
        _cors_ok(c.open_response, origin)
        c.close()
    for origin in ('http://c.example', 'https://a.example', 'https://b.example', cors_list_server.origin):
        resp = PollingClient(cors_list_server).request(
            'GET', '/engine.io/?EIO=4&transport=polling', headers={'Origin': origin})
        expect_error(resp, 403, 4)
    # no Origin: not a browser, passes
    PollingClient(cors_list_server).handshake()


def test_cors_off(cors_off_server: LiveServer) -> None:
    """cors_allowed_origins=[]: any origin passes, and no CORS headers at all."""
    c = PollingClient(cors_off_server, headers={'Origin': EVIL})
    c.handshake()
    try:
        assert c.open_response is not None
        assert not [h for h in c.open_response.headers if h.lower().startswith('access-control-')], \
            c.open_response
        pre = c.request('OPTIONS', c.target(), headers={'Access-Control-Request-Method': 'POST'})
        assert pre.status == 204, pre
        assert not [h for h in pre.headers if h.lower().startswith('access-control-')], pre
    finally:
        c.close()


# --------------------------------------------------------------------------
# transports enabled on the server

WS_HANDSHAKE = {
    'Upgrade': 'websocket',
    'Connection': 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
}


def expect_refused_websocket(server: LiveServer, target: str, code: int) -> None:
    """A refused WebSocket handshake: the HTTP error before any 101; with
    gevent-websocket (101 sent before the app runs) the socket closed at once."""
    if not server.kind.endswith('-gws'):
        resp = PollingClient(server).request('GET', target, headers=WS_HANDSHAKE, timeout=POLL_TIMEOUT)
        expect_error(resp, 400, code)
        return
    data = b''
    with socket.create_connection(('127.0.0.1', server.port), timeout=2.0) as sock:
        sock.sendall(build_request(server.port, 'GET', target, None, WS_HANDSHAKE))
        # the status line and headers, then a close frame (0x88) or the end of the connection
        try:
            while True:
                chunk = sock.recv(65536)
                data += chunk
                _head, sep, rest = data.partition(b'\r\n\r\n')
                if not chunk or (sep and rest[:1] == b'\x88'):
                    break
        except TimeoutError:
            raise AssertionError(f'refused WebSocket left open: {data!r}') from None
    assert data.startswith((b'HTTP/1.1 101', b'HTTP/1.1 400')), data


def test_polling_only_server(polling_only_server: LiveServer) -> None:
    c = PollingClient(polling_only_server)
    opened = c.handshake()
    try:
        assert opened['upgrades'] == [], opened
        c.send('polling only')
        assert c.receive(1) == ['polling only']
        # an upgrade to the disabled transport: unknown transport, before any 101
        expect_refused_websocket(polling_only_server, c.target(transport='websocket'), 0)
        c.send('still polling')
        assert c.receive(1) == ['still polling']
    finally:
        c.close()
    resp = c.request('GET', '/engine.io/?EIO=4&transport=websocket', timeout=POLL_TIMEOUT)
    expect_error(resp, 400, 0)
    expect_refused_websocket(polling_only_server, '/engine.io/?EIO=4&transport=websocket', 0)


def test_websocket_only_server_refuses_polling(websocket_only_server: LiveServer) -> None:
    c = PollingClient(websocket_only_server)
    expect_error(c.request('GET', '/engine.io/?EIO=4&transport=polling'), 400, 0)
    expect_error(c.request('POST', '/engine.io/?EIO=4&transport=polling', b'4x'), 400, 0)
    expect_error(c.request('GET', f'/engine.io/?EIO=4&transport=polling&sid={BOGUS_SID}'), 400, 0)


# --------------------------------------------------------------------------
# the application closing the session, and failing


def test_disconnect_from_handler(server: LiveServer, client: PollingClient) -> None:
    resp = client.post(Packet.message('__disconnect'), timeout=5)
    assert resp.status == 200 and resp.body == b'ok', resp
    assert resp.elapsed < 1.0, f'POST took {resp.elapsed:.2f} s'
    assert server.wait_for_log(f'echo: disconnect {client.sid}'), 'disconnect handler did not run'
    # POSTs after the disconnect are refused
    expect_error(client.post(Packet.message('late')), 400, 1)
    # the next GET gets the close packet, then the sid is unknown
    resp = client.get(timeout=POLL_TIMEOUT)
    assert resp.status == 200, resp
    packets = decode_payload(resp.body)
    # what was queued before the call (a ping at most, if the interval passed), then the close
    assert packets[-1].type == CLOSE and all(p.type == PING for p in packets[:-1]), resp
    expect_error(client.get(timeout=POLL_TIMEOUT), 400, 1)
    expect_error(client.post(Packet.message('later')), 400, 1)
    client.expect_reason('server disconnect')


def test_disconnect_from_handler_with_pending_get(client: PollingClient) -> None:
    pending = waiting_get(client, POLL_TIMEOUT)
    resp = client.post(Packet.message('__disconnect'), timeout=5)
    assert resp.status == 200 and resp.elapsed < 1.0, resp
    got = pending.result(POLL_TIMEOUT)
    assert got.status == 200, got
    assert types(decode_payload(got.body))[-1] == CLOSE, got
    expect_error(client.get(timeout=POLL_TIMEOUT), 400, 1)


def test_disconnect_sends_queued_packets_first(client: PollingClient) -> None:
    """What the app queued before disconnect() goes out first, then the close packet."""
    client.post_ok(Packet.message('__send 3'), Packet.message('__disconnect'))
    received: list[Packet] = []
    deadline = time.monotonic() + 5
    while not received or received[-1].type != CLOSE:
        assert time.monotonic() < deadline, received
        received.extend(p for p in client.poll(timeout=POLL_TIMEOUT) if p.type not in (PING, NOOP))
    assert received == [Packet(MESSAGE, 'm0'), Packet(MESSAGE, 'm1'), Packet(MESSAGE, 'm2'), Packet(CLOSE)]
    expect_error(client.get(timeout=POLL_TIMEOUT), 400, 1)


def test_handler_exception_keeps_session(client: PollingClient) -> None:
    client.send('__raise')
    client.send('alive')
    assert client.receive(1) == ['alive']


def test_block_command(client: PollingClient) -> None:
    client.send('__block 0.2')
    assert client.receive(1) == ['unblocked']


# --------------------------------------------------------------------------
# other paths go to the wrapped application


@pytest.mark.parametrize(('method', 'target'), [
    ('GET', '/'),
    ('GET', '/other/path?EIO=4&transport=polling'),
    ('POST', '/api'),
    ('GET', '/socket.io/?EIO=4&transport=polling'),
])
def test_fallback_app(server: LiveServer, method: str, target: str) -> None:
    body = b'data' if method == 'POST' else None
    resp = PollingClient(server).request(method, target, body)
    assert resp.status == 200, resp
    assert resp.body == b'fallback', resp
    assert resp.content_type.startswith('text/plain'), resp


def test_a_long_poll_abandoned_by_the_client_does_not_count_as_a_duplicate(client):
    """A client (or a proxy) that drops a waiting GET and polls again keeps its
    session; a second GET on a live connection is still a duplicate."""
    assert client.server is not None and client.sid
    with RawRequest(client.port, 'GET', client.target(), timeout=5):
        wait_for_session(client.server, client.sid, get_waiting=True)
    # the abandoned GET may still be registered: the next one finds its client gone
    client.send('after the abandoned poll')
    assert client.receive(1) == ['after the abandoned poll']
    with RawRequest(client.port, 'GET', client.target(), timeout=5) as first:
        wait_for_session(client.server, client.sid, get_waiting=True)
        expect_error(client.get(timeout=5), 400, 3)
        assert [p.type for p in decode_payload(first.response().body)] == [CLOSE]
