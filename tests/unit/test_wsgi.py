"""The WSGI application in-process (webtest), on the threading backend."""

import base64
import gzip
import json
import threading
import time

import pytest
import webtest

from engineio_wsgi import ConnectionRefusedError, Server, WSGIApp
from engineio_wsgi.options import Options
from engineio_wsgi.pipeline import open_packet_rest
from tests import live
from tests.unit.fakes import FakeBackend

EIO = '/engine.io/?EIO=4&transport=polling'


def fallback(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'fallback ' + environ['PATH_INFO'].encode()]


def make(**kwargs):
    kwargs.setdefault('async_mode', 'threading')
    # clients here never come back for their close packet: do not wait long for them
    kwargs.setdefault('shutdown_timeout', 0.05)
    eio = Server(**kwargs)
    received = []
    closed = []

    @eio.on('message')
    def on_message(sid, data):
        received.append(data)
        if data == 'disconnect me':
            eio.disconnect(sid)
        else:
            eio.send(sid, data)

    @eio.on('disconnect')
    def on_disconnect(sid, reason):
        closed.append((sid, reason))
    app = webtest.TestApp(WSGIApp(eio, fallback))
    return eio, app, received, closed


def handshake(app, **extra):
    res = app.get(EIO, **extra)
    assert res.body[:1] == b'0'
    return json.loads(res.body[1:].split(b'\x1e')[0])


def error(res):
    assert res.content_type == 'application/json'
    return res.status_int, res.json['code']


def wait_until(predicate, timeout=3.0):
    """True once ``predicate()`` is, False after ``timeout``."""
    try:
        return bool(live.wait_until(predicate, timeout, interval=0.005))
    except AssertionError:
        return False


def test_open_packet_is_the_json_of_its_fields_whatever_the_sid():
    class OddIds(Server):
        @staticmethod
        def generate_id():
            return 'a"b\\c\u00e9'

    eio = OddIds(async_mode='threading', ping_interval=7, ping_timeout=3,
                 max_http_buffer_size=1234)
    # webtest gives no socket to take over: no upgrade is offered
    res = webtest.TestApp(WSGIApp(eio)).get(EIO)
    assert json.loads(res.body[1:].decode()) == {
        'sid': 'a"b\\c\u00e9', 'upgrades': [], 'pingInterval': 7000,
        'pingTimeout': 3000, 'maxPayload': 1234}
    eio.shutdown()
    # and where the upgrade is offered, the same packet with it
    options = Options.from_kwargs(ping_interval=7, ping_timeout=3, max_http_buffer_size=1234)
    assert json.loads('{"sid":"x"' + open_packet_rest(options, True)) == {
        'sid': 'x', 'upgrades': ['websocket'], 'pingInterval': 7000,
        'pingTimeout': 3000, 'maxPayload': 1234}


def test_handshake_open_packet():
    eio, app, _, _ = make(ping_interval=0.3, ping_timeout=0.2)
    res = app.get(EIO)
    assert res.headers['Content-Type'] == 'text/plain; charset=UTF-8'
    assert res.headers['Cache-Control'] == 'no-store'
    info = json.loads(res.body[1:])
    assert set(info) == {'sid', 'upgrades', 'pingInterval', 'pingTimeout', 'maxPayload'}
    assert (info['pingInterval'], info['pingTimeout'], info['maxPayload']) == (300, 200, 1000000)
    assert len(info['sid']) >= 16 and info['sid'].replace('-', '').replace('_', '').isalnum()
    # webtest's environ gives no socket access: WebSocket is not offered
    assert info['upgrades'] == []
    eio.shutdown()


def test_sids_are_unique():
    eio, app, _, _ = make()
    sids = {handshake(app)['sid'] for _ in range(200)}
    assert len(sids) == 200
    eio.shutdown()


@pytest.mark.parametrize('query,method,expected', [
    ('EIO=4&EIO=4&transport=polling', 'GET', (400, 3)),
    ('EIO=4&transport=polling&transport=polling', 'GET', (400, 3)),
    ('EIO=4&transport=polling&sid=a&sid=b', 'GET', (400, 3)),
    ('EIO=3&EIO=3&transport=bogus', 'GET', (400, 3)),       # 1 before 2 and 3
    ('transport=polling', 'GET', (400, 5)),
    ('EIO=3&transport=polling', 'GET', (400, 5)),
    ('EIO=3&transport=bogus', 'GET', (400, 5)),              # 2 before 3
    ('EIO=4', 'GET', (400, 0)),
    ('EIO=4&transport=bogus', 'GET', (400, 0)),
    ('EIO=4&transport=polling&sid=nope', 'GET', (400, 1)),
    ('EIO=4&transport=polling&sid=nope', 'POST', (400, 1)),
    ('EIO=4&transport=polling', 'POST', (400, 2)),
    ('EIO=4&transport=polling', 'PUT', (400, 2)),
    ('EIO=4&transport=websocket', 'GET', (400, 3)),          # no Upgrade header
])
def test_validation_order(query, method, expected):
    eio, app, _, _ = make()
    res = app.request('/engine.io/?' + query, method=method, expect_errors=True)
    assert error(res) == expected
    assert b'nope' not in res.body  # never echoes the client's input
    assert eio.session_count() == 0


def test_transport_not_enabled_is_unknown_transport():
    eio, app, _, _ = make(transports=['websocket'])
    assert error(app.get(EIO, expect_errors=True)) == (400, 0)


def test_origin_checks_come_after_transport_and_before_sid():
    eio, app, _, _ = make()
    bad_chars = app.get(EIO + '&sid=nope', headers={'Origin': 'http://a b'}, expect_errors=True)
    assert error(bad_chars) == (400, 3)
    foreign = app.get(EIO + '&sid=nope', headers={'Origin': 'http://evil.com'},
                      expect_errors=True)
    assert error(foreign) == (403, 4)
    assert 'Access-Control-Allow-Origin' not in foreign.headers
    unknown_transport = app.get('/engine.io/?EIO=4&transport=x',
                                headers={'Origin': 'http://evil.com'}, expect_errors=True)
    assert error(unknown_transport) == (400, 0)


def test_same_origin_passes_with_cors_headers():
    eio, app, _, _ = make()
    res = app.get(EIO, headers={'Origin': 'http://localhost:80', 'Host': 'localhost'})
    assert res.headers['Access-Control-Allow-Origin'] == 'http://localhost:80'
    assert res.headers['Access-Control-Allow-Credentials'] == 'true'
    eio.shutdown()


def test_errors_carry_the_cors_headers_the_request_would_have_had():
    eio, app, _, _ = make(cors_allowed_origins='*')
    res = app.get(EIO + '&sid=nope', headers={'Origin': 'http://a.com'}, expect_errors=True)
    assert error(res) == (400, 1)
    assert res.headers['Access-Control-Allow-Origin'] == 'http://a.com'


# Origins check 4 refuses, each with characters no response header may carry
# or that are not in a serialized origin
INVALID_ORIGINS = ['http://a\x01b', 'http://a b', 'http://\u00e9.example', 'http://\u0100.example',
                   'http://a.example\r\nX-Injected: 1', 'http://a.example/path', '']


def _cors_headers(res):
    return [(name, value) for name, value in res.headerlist
            if name.lower().startswith('access-control-') or name.lower() == 'vary']


def _policies(origin, asked):
    """cors_allowed_origins values that would allow ``origin`` if it were valid;
    the callables note each origin they are asked about in ``asked``."""
    def one(o):
        asked.append(o)
        return True

    def two(o, environ):
        asked.append(o)
        return True
    return ['*', [origin], ['http://x.example', '*'], one, two]


@pytest.mark.parametrize('origin', INVALID_ORIGINS)
@pytest.mark.parametrize('method, query, expected', [
    ('GET', EIO, (400, 3)),                                     # check 4
    ('GET', EIO + '&sid=nope', (400, 3)),                       # 4 before 6
    ('POST', EIO, (400, 3)),                                    # 4 before 8
    ('OPTIONS', EIO, (400, 3)),                                 # a preflight too
    ('GET', '/engine.io/?EIO=3&transport=polling', (400, 5)),   # an earlier check
    ('GET', '/engine.io/?EIO=4&transport=x', (400, 0)),
])
def test_an_invalid_origin_is_never_echoed(origin, method, query, expected):
    asked = []
    for allowed in _policies(origin, asked):
        eio, _, _, _ = make(cors_allowed_origins=allowed)
        # lint off: it refuses the response header this test looks for
        app = webtest.TestApp(WSGIApp(eio), lint=False)
        res = app.request(query, method=method, expect_errors=True,
                          headers={'Origin': origin, 'Access-Control-Request-Headers': 'x-a'})
        assert error(res) == expected, (allowed, res)
        assert _cors_headers(res) == [], (allowed, res.headerlist)
        assert eio.session_count() == 0
    assert asked == [], 'a cors_allowed_origins callable saw an invalid Origin'


@pytest.mark.parametrize('allowed', [
    '*', ['http://a.com'], ['http://x.example', '*'], None,
    lambda origin: origin == 'http://a.com',
    lambda origin, environ: origin == 'http://a.com' and 'HTTP_ORIGIN' in environ,
])
@pytest.mark.parametrize('method, query, expected', [
    ('GET', EIO + '&sid=nope', (400, 1)),
    ('POST', EIO, (400, 2)),
    ('GET', '/engine.io/?EIO=3&transport=polling', (400, 5)),
    ('GET', '/engine.io/?EIO=4&transport=x', (400, 0)),
    ('GET', '/engine.io/?EIO=4&EIO=4&transport=polling', (400, 3)),
])
def test_errors_for_an_allowed_origin_carry_its_cors_headers(allowed, method, query, expected):
    eio, app, _, _ = make(cors_allowed_origins=allowed)
    # None allows the same origin only: the request's Host is a.com
    res = app.request(query, method=method, expect_errors=True,
                      headers={'Origin': 'http://a.com', 'Host': 'a.com'})
    assert error(res) == expected
    assert _cors_headers(res) == [('Access-Control-Allow-Origin', 'http://a.com'),
                                  ('Vary', 'Origin'), ('Access-Control-Allow-Credentials', 'true')]


def test_preflight_opens_nothing():
    eio, app, _, _ = make(cors_allowed_origins=['http://a.com'])
    res = app.options(EIO, headers={'Origin': 'http://a.com',
                                    'Access-Control-Request-Headers': 'content-type'})
    assert res.status_int == 204
    assert res.headers['Access-Control-Allow-Methods'] == 'GET, POST, OPTIONS'
    assert res.headers['Access-Control-Allow-Headers'] == 'content-type'
    assert eio.session_count() == 0


def test_echo_text_and_binary():
    eio, app, received, _ = make()
    sid = handshake(app)['sid']
    url = EIO + '&sid=' + sid
    body = '4héllo 🎉\x1e4{"json": "stays text"}\x1eb' + base64.b64encode(b'\x00\xff').decode()
    res = app.post(url, body.encode(), content_type='text/plain;charset=UTF-8')
    assert res.body == b'ok'
    assert wait_until(lambda: len(received) == 3)
    assert received == ['héllo 🎉', '{"json": "stays text"}', b'\x00\xff']
    packets = []
    while len(packets) < 3:
        packets += app.get(url).body.decode().split('\x1e')
    assert packets == ['4héllo 🎉', '4{"json": "stays text"}', 'bAP8=']
    eio.shutdown()


@pytest.mark.parametrize('body', ['4ok\x1e2', '4ok\x1e9x', '4ok\x1ebnot base64!', '4ok\x1e\x1e4x',
                                  '4ok\x1e0'])
def test_bad_packets_close_the_session_but_earlier_ones_arrive(body):
    eio, app, received, closed = make()
    sid = handshake(app)['sid']
    res = app.post(EIO + '&sid=' + sid, body.encode(), content_type='text/plain',
                   expect_errors=True)
    assert error(res) == (400, 3)
    # gone at once: the next GET is refused, even before the earlier packet is handled
    assert error(app.get(EIO + '&sid=' + sid, expect_errors=True)) == (400, 1)
    assert wait_until(lambda: closed)
    assert received == ['ok']
    assert closed == [(sid, 'parse error')]


def test_invalid_utf8_and_empty_body_are_parse_errors():
    for body in (b'4\xff\xfe', b''):
        eio, app, _, closed = make()
        sid = handshake(app)['sid']
        res = app.post(EIO + '&sid=' + sid, body, content_type='text/plain', expect_errors=True)
        assert error(res) == (400, 3)
        assert closed == [(sid, 'parse error')]
        assert error(app.get(EIO + '&sid=' + sid, expect_errors=True)) == (400, 1)


@pytest.mark.parametrize('declared', [
    '\u00b2', '1\u00b2', '\u0666', '\u0661\u0662', '\uff16', ' 6', '6 ', '+6', '1_0', '0x6',
    '6.0', '-6', '6\n',
])
def test_a_content_length_not_of_ascii_digits_is_a_bad_request(declared):
    # str.isdigit() and int() take '²', Arabic-Indic and fullwidth digits
    eio, _, received, closed = make()
    app = webtest.TestApp(WSGIApp(eio), lint=False)   # webtest's lint refuses such a length
    sid = handshake(app)['sid']
    request = webtest.TestRequest.blank(EIO + '&sid=' + sid, method='POST', body=b'4hello',
                                        content_type='text/plain')
    request.environ['CONTENT_LENGTH'] = declared
    res = app.do_request(request, expect_errors=True)
    assert error(res) == (400, 3)
    assert closed == [(sid, 'parse error')]
    assert received == []
    assert error(app.get(EIO + '&sid=' + sid, expect_errors=True)) == (400, 1)
    eio.shutdown()


def test_octet_stream_post_is_refused_and_closes():
    eio, app, _, closed = make()
    sid = handshake(app)['sid']
    res = app.post(EIO + '&sid=' + sid, b'4x', content_type='application/octet-stream',
                   expect_errors=True)
    assert error(res) == (400, 3)
    assert closed == [(sid, 'parse error')]
    assert error(app.get(EIO + '&sid=' + sid, expect_errors=True)) == (400, 1)


def test_body_over_max_payload_is_413_and_closes():
    eio, app, _, closed = make(max_http_buffer_size=100)
    sid = handshake(app)['sid']
    res = app.post(EIO + '&sid=' + sid, b'4' + b'x' * 100, content_type='text/plain',
                   expect_errors=True)
    assert error(res) == (413, 3)
    assert closed == [(sid, 'payload too large')]


def test_unsolicited_pong_noop_and_upgrade_are_ignored():
    eio, app, received, closed = make()
    sid = handshake(app)['sid']
    assert app.post(EIO + '&sid=' + sid, b'3\x1e6\x1e5\x1e4x', content_type='text/plain').body == b'ok'
    assert wait_until(lambda: received == ['x'])
    assert closed == []
    eio.shutdown()


def test_client_close_answers_ok_and_ends_the_session():
    eio, app, _, closed = make()
    sid = handshake(app)['sid']
    assert app.post(EIO + '&sid=' + sid, b'1', content_type='text/plain').body == b'ok'
    assert closed == [(sid, 'client disconnect')]
    assert error(app.get(EIO + '&sid=' + sid, expect_errors=True)) == (400, 1)
    assert eio.session_count() == 0


def test_connect_handler_refusals():
    eio, app, _, _ = make()
    eio.on('connect', lambda sid, environ: False)
    res = app.get(EIO, expect_errors=True)
    assert error(res) == (403, 4)

    def refuse_with_reason(sid, environ):
        raise ConnectionRefusedError('not today')
    eio.on('connect', refuse_with_reason)
    res = app.get(EIO, expect_errors=True)
    assert error(res) == (403, 4) and res.json['message'] == 'not today'

    def broken(sid, environ):
        raise RuntimeError('secret internals')
    eio.on('connect', broken)
    res = app.get(EIO, expect_errors=True)
    assert error(res) == (403, 4) and 'secret' not in res.text
    assert eio.session_count() == 0


def test_connect_handler_sees_the_environ_and_can_send_first():
    eio, app, _, _ = make()
    seen = {}

    def on_connect(sid, environ):
        seen['token'] = environ['QUERY_STRING']
        eio.send(sid, 'welcome')
    eio.on('connect', on_connect)
    res = app.get(EIO + '&token=abc')
    assert 'token=abc' in seen['token']
    assert res.body.split(b'\x1e')[1] == b'4welcome'
    eio.shutdown()


def test_disconnect_from_the_message_handler_returns_at_once_and_client_gets_close():
    eio, app, received, closed = make()
    sid = handshake(app)['sid']
    start = time.monotonic()
    app.post(EIO + '&sid=' + sid, b'4disconnect me', content_type='text/plain')
    assert wait_until(lambda: closed)
    assert time.monotonic() - start < 1.0
    assert closed == [(sid, 'server disconnect')]
    assert app.get(EIO + '&sid=' + sid).body == b'1'
    assert error(app.get(EIO + '&sid=' + sid, expect_errors=True)) == (400, 1)
    assert eio.session_count() == 0


def test_disconnect_from_another_thread_wakes_a_waiting_get():
    eio, app, _, closed = make()
    sid = handshake(app)['sid']
    getter, result = waiting_get(eio, app, sid)
    start = time.monotonic()
    eio.disconnect(sid)
    assert time.monotonic() - start < 0.1
    getter.join(2)
    assert result == [b'1']
    assert closed == [(sid, 'server disconnect')]


def test_post_after_server_disconnect_is_unknown_sid():
    eio, app, _, _ = make()
    sid = handshake(app)['sid']
    eio.disconnect(sid)
    res = app.post(EIO + '&sid=' + sid, b'4x', content_type='text/plain', expect_errors=True)
    assert error(res) == (400, 1)


def test_old_style_disconnect_handler_without_reason():
    eio, app, _, _ = make()
    calls = []
    eio.on('disconnect', lambda sid: calls.append(sid))
    sid = handshake(app)['sid']
    eio.disconnect(sid)
    assert calls == [sid]


def test_send_rules():
    eio, app, _, _ = make()
    sid = handshake(app)['sid']
    with pytest.raises(ValueError):
        eio.send(sid, 'a\x1eb')
    with pytest.raises(TypeError):
        eio.send(sid, {'not': 'text'})
    eio.send('no-such-sid', 'ignored')  # logged, not raised
    eio.send(sid, bytearray(b'\x01'))
    assert app.get(EIO + '&sid=' + sid).body == b'bAQ=='
    eio.shutdown()


def test_session_data_and_transport():
    eio, app, _, _ = make()
    sid = handshake(app)['sid']
    assert eio.transport(sid) == 'polling'
    with eio.session(sid) as data:
        data['user'] = 'ann'
    assert eio.get_session(sid) == {'user': 'ann'}
    eio.save_session(sid, {'user': 'bob'})
    assert eio.get_session(sid)['user'] == 'bob'
    with pytest.raises(KeyError):
        eio.transport('nope')
    eio.shutdown()


def call(wsgi_app, query, **environ):
    """Call the WSGI app directly (webtest would undo the compression)."""
    seen = {}

    def start_response(status, headers):
        seen['status'], seen['headers'] = status, dict(headers)
    env = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/engine.io/', 'QUERY_STRING': query,
           'wsgi.url_scheme': 'http', 'HTTP_HOST': 'localhost', **environ}
    body = b''.join(wsgi_app(env, start_response))
    return seen['status'], seen['headers'], body


def test_gzip_compression_of_large_poll_responses():
    eio, app, _, _ = make()
    sid = handshake(app)['sid']
    eio.send(sid, 'x' * 5000)
    status, headers, body = call(app.app, f'EIO=4&transport=polling&sid={sid}',
                                 HTTP_ACCEPT_ENCODING='deflate;q=0.5, gzip')
    assert status == '200 OK'
    assert headers['Content-Encoding'] == 'gzip'
    assert headers['Content-Length'] == str(len(body))
    assert gzip.decompress(body) == b'4' + b'x' * 5000
    eio.shutdown()


def test_compression_can_be_turned_off():
    eio, app, _, _ = make(http_compression=False)
    sid = handshake(app)['sid']
    eio.send(sid, 'x' * 5000)
    _, headers, body = call(app.app, f'EIO=4&transport=polling&sid={sid}',
                            HTTP_ACCEPT_ENCODING='gzip')
    assert 'Content-Encoding' not in headers and body == b'4' + b'x' * 5000
    eio.shutdown()


def test_cookie_is_off_by_default_and_on_when_asked():
    eio, app, _, _ = make()
    assert 'Set-Cookie' not in app.get(EIO).headers
    eio, app, _, _ = make(cookie='io')
    res = app.get(EIO)
    sid = json.loads(res.body[1:])['sid']
    assert res.headers['Set-Cookie'] == f'io={sid}; Path=/; HttpOnly; SameSite=Lax'
    eio.shutdown()


def test_shutdown_sends_close_and_refuses_new_handshakes():
    eio, app, _, closed = make()
    sid = handshake(app)['sid']
    getter, result = waiting_get(eio, app, sid)
    eio.shutdown()
    getter.join(2)
    assert result == [b'1']
    assert closed == [(sid, 'server shutdown')]
    assert error(app.get(EIO, expect_errors=True)) == (503, 3)


def test_paths_and_fallback():
    eio, app, _, _ = make()
    assert app.get('/engine.io?EIO=4&transport=polling').body[:1] == b'0'
    assert app.get('/other').text == 'fallback /other'
    bare = webtest.TestApp(WSGIApp(eio))
    assert bare.get('/other', expect_errors=True).status_int == 404
    custom = webtest.TestApp(WSGIApp(eio, fallback, engineio_path='/socket.io/'))
    assert custom.get('/socket.io/?EIO=4&transport=polling').body[:1] == b'0'
    assert custom.get('/engine.io/').text == 'fallback /engine.io/'
    mounted = custom.get('/socket.io/?EIO=4&transport=polling',
                         extra_environ={'SCRIPT_NAME': '/app'})
    assert mounted.body[:1] == b'0'
    eio.shutdown()


def test_static_files(tmp_path):
    (tmp_path / 'index.html').write_text('<h1>home</h1>')
    (tmp_path / 'assets').mkdir()
    (tmp_path / 'assets' / 'app.js').write_text('alert(1)')
    (tmp_path / 'secret.txt').write_text('no')
    eio = Server(async_mode='threading')
    app = webtest.TestApp(WSGIApp(eio, fallback, static_files={
        '/': str(tmp_path / 'index.html'),
        '/static/': str(tmp_path / 'assets'),
        '/data.bin': {'filename': str(tmp_path / 'secret.txt'),
                      'content_type': 'application/x-thing'},
    }))
    home = app.get('/')
    assert home.text == '<h1>home</h1>' and home.content_type == 'text/html'
    js = app.get('/static/app.js')
    assert js.text == 'alert(1)' and 'javascript' in js.content_type
    assert app.get('/data.bin').content_type == 'application/x-thing'
    assert app.get('/static/../secret.txt').text.startswith('fallback')
    assert app.get('/static/%2e%2e/secret.txt', expect_errors=True).text != 'no'
    assert app.get('/static/missing.js').text == 'fallback /static/missing.js'


def waiting_get(eio, app, sid):
    """A long-poll GET in its own thread, returned once it waits on the session."""
    result = []
    getter = threading.Thread(target=lambda: result.append(app.get(EIO + '&sid=' + sid).body))
    getter.start()
    session = eio._sessions.get(sid)
    assert wait_until(lambda: session.polling.get_waiting), 'the GET never started waiting'
    return getter, result


def _threads():
    return threading.active_count()


def test_leak_1000_sessions_leave_nothing_behind():
    """1,000 sessions ended by the client, by ping timeout and by the server."""
    eio, app, _, closed = make(ping_interval=0.1, ping_timeout=0.1)
    baseline = _threads()
    for _ in range(10):
        for i in range(100):
            sid = handshake(app)['sid']
            url = EIO + '&sid=' + sid
            if i % 3 == 0:
                app.post(url, b'4hi\x1e1', content_type='text/plain')
            elif i % 3 == 1:
                eio.disconnect(sid)
                assert app.get(url).body.endswith(b'1')
            # the rest time out: nobody answers their pings
        assert wait_until(lambda: eio.session_count() == 0, timeout=5)
    reasons = {reason for _, reason in closed}
    assert reasons == {'client disconnect', 'server disconnect', 'ping timeout'}
    assert len(closed) == 1000
    # heartbeats end with their sessions; idle handler workers leave after a few seconds
    assert wait_until(lambda: _threads() <= baseline, timeout=10), (_threads(), baseline)


def test_global_session_limit_is_503_and_frees_up():
    eio, app, _, _ = make(max_sessions=2)
    first = handshake(app)['sid']
    handshake(app)
    assert error(app.get(EIO, expect_errors=True)) == (503, 3)
    app.post(EIO + '&sid=' + first, b'1', content_type='text/plain')
    handshake(app)
    eio.shutdown()


def test_per_client_limit_is_429_and_counts_each_address():
    eio, app, _, _ = make(max_sessions_per_client=1)
    a = {'extra_environ': {'REMOTE_ADDR': '10.0.0.1'}}
    b = {'extra_environ': {'REMOTE_ADDR': '10.0.0.2'}}
    handshake(app, **a)
    assert error(app.get(EIO, expect_errors=True, **a)) == (429, 3)
    handshake(app, **b)
    eio.shutdown()


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    eio, app, _, _ = make(max_sessions_per_client=1, trusted_proxies=['10.9.9.9'])
    via_proxy = {'REMOTE_ADDR': '10.9.9.9', 'HTTP_X_FORWARDED_FOR': '203.0.113.5, 10.9.9.9'}
    other_client = {'REMOTE_ADDR': '10.9.9.9', 'HTTP_X_FORWARDED_FOR': '203.0.113.6'}
    handshake(app, extra_environ=via_proxy)
    assert error(app.get(EIO, expect_errors=True, extra_environ=via_proxy)) == (429, 3)
    handshake(app, extra_environ=other_client)
    # an untrusted peer cannot pick its address by sending the header
    spoof = {'REMOTE_ADDR': '198.51.100.1', 'HTTP_X_FORWARDED_FOR': '1.2.3.4'}
    handshake(app, extra_environ=spoof)
    assert error(app.get(EIO, expect_errors=True,
                         extra_environ={**spoof, 'HTTP_X_FORWARDED_FOR': '5.6.7.8'})) == (429, 3)
    eio.shutdown()


def test_message_rate_limit_closes_the_flooding_session():
    eio, app, received, closed = make(message_rate_limit=(5, 60))
    sid = handshake(app)['sid']
    ok = app.post(EIO + '&sid=' + sid, '\x1e'.join(['4m'] * 5).encode(), content_type='text/plain')
    assert ok.body == b'ok'
    res = app.post(EIO + '&sid=' + sid, b'4one too many', content_type='text/plain',
                   expect_errors=True)
    assert error(res) == (429, 3)
    assert wait_until(lambda: closed)  # reported after the messages already received
    assert closed == [(sid, 'transport error')]
    assert received == ['m'] * 5


def test_shutdown_drops_sessions_whose_clients_never_come_back():
    eio, app, _, closed = make(shutdown_timeout=0.1)
    before = _threads()
    sids = [handshake(app)['sid'] for _ in range(3)]
    eio.shutdown()
    assert eio.session_count() == 0
    assert sorted(sid for sid, _ in closed) == sorted(sids)
    # their heartbeats are gone too, not left to run out on their own: no
    # thread is left of them (nor of the scheduler that carried them)
    assert wait_until(lambda: _threads() <= before, timeout=2)


def test_a_poll_past_the_ping_deadline_is_refused_though_the_heartbeat_is_late():
    """PROTOCOL.md (Heartbeat): a client that polls pingInterval + pingTimeout
    after the handshake gets 400, also when the heartbeat's own look at that
    deadline comes later (a busy machine). Here it never comes: the backend's
    clock is moved by hand and its carrier never runs."""
    eio, app, _, closed = make(ping_interval=1.0, ping_timeout=0.5)
    backend = FakeBackend()
    eio._backend = backend              # decided before the first request: kept
    sid = handshake(app)['sid']
    backend.clock.advance(1.0)
    eio._sessions.get(sid).heartbeat.step()     # the ping goes out on time
    backend.clock.advance(0.5)                  # the pong's deadline passes; nobody looks
    res = app.get(EIO + '&sid=' + sid, expect_errors=True)
    assert res.status_int == 400, res.body
    assert error(res) == (400, 1)
    assert closed == [(sid, 'ping timeout')]
    eio.shutdown()
