"""The rest of what python-engineio documents on Server and WSGIApp."""

from __future__ import annotations

import functools
import gzip
import inspect
import json
import zlib

import engineio
import pytest
import webob
import webtest

import engineio_wsgi

from .engines import HANDSHAKE, OURS, PYEIO, make_server, open_sid, outcomes, running


@pytest.mark.parametrize('path', ['socket.io', '/socket.io', 'socket.io/', '/socket.io/'])
def test_engineio_path_in_any_spelling(path):
    def scenario(engine):
        with running(engine, engineio_path=path) as (_, app):
            res = app.get(HANDSHAKE.replace('engine.io', 'socket.io'))
            other = app.get(HANDSHAKE).text
            return open_sid(res) is not None, other
    expected = (True, 'fallback /engine.io/')
    assert outcomes(scenario) == {PYEIO: expected, OURS: expected}


def test_a_nested_engineio_path():
    def scenario(engine):
        with running(engine, engineio_path='api/realtime') as (_, app):
            return open_sid(app.get(HANDSHAKE.replace('engine.io', 'api/realtime'))) is not None
    assert outcomes(scenario) == {PYEIO: True, OURS: True}


def test_handle_request_is_a_wsgi_application_by_itself():
    def scenario(engine):
        eio = make_server(engine)
        try:
            app = webtest.TestApp(eio.handle_request, extra_environ={'wsgi.multithread': True})
            # no middleware: the path is not looked at
            return open_sid(app.get('/anything/?EIO=4&transport=polling')) is not None
        finally:
            eio.shutdown()
    assert outcomes(scenario) == {PYEIO: True, OURS: True}


def test_every_disconnect_reason_of_python_engineio_with_the_same_value():
    theirs = {name: value for name, value in vars(engineio.Server.reason).items()
              if name.isupper()}
    assert theirs, 'python-engineio names no reasons?'
    assert {name: getattr(engineio_wsgi.Server.reason, name, None) for name in theirs} == theirs


def test_every_constructor_keyword_of_python_engineio_with_its_default():
    params = inspect.signature(engineio.Server.__init__).parameters.values()
    defaults = {p.name: p.default for p in params
                if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != 'self'}
    assert 'ping_interval' in defaults and 'cors_allowed_origins' in defaults
    defaults['async_mode'] = 'threading'
    eio = engineio_wsgi.Server(**defaults)
    assert eio.options.ping_interval == defaults['ping_interval']


def test_the_session_store_from_connect_and_message_handlers():
    def scenario(engine):
        with running(engine) as (eio, app):
            @eio.on('connect')
            def connect(sid, environ):
                with eio.session(sid) as session:
                    session['user'] = environ['QUERY_STRING'].rpartition('user=')[2]
                session = eio.get_session(sid)
                session['transport'] = eio.transport(sid)
                eio.save_session(sid, session)

            @eio.on('message')
            def message(sid, data):
                eio.send(sid, json.dumps(eio.get_session(sid)))

            sid = open_sid(app.get(HANDSHAKE + '&user=ann'))
            app.post(HANDSHAKE + '&sid=' + sid, b'4hello', content_type='text/plain')
            body = app.get(HANDSHAKE + '&sid=' + sid).body
            return json.loads(body.split(b'\x1e')[-1][1:])
    expected = {'user': 'ann', 'transport': 'polling'}
    assert outcomes(scenario) == {PYEIO: expected, OURS: expected}


def test_unknown_sids():
    def scenario(engine):
        with running(engine) as (eio, _):
            failures = []
            for call in (eio.get_session, eio.transport, lambda sid: eio.save_session(sid, {})):
                try:
                    call('nope')
                except KeyError:
                    failures.append('KeyError')
            eio.send('nope', 'ignored')
            eio.disconnect('nope')
            return failures
    expected = ['KeyError'] * 3
    assert outcomes(scenario) == {PYEIO: expected, OURS: expected}


DOCUMENTED_METHODS = ('send', 'get_session', 'save_session', 'session', 'disconnect',
                      'handle_request', 'shutdown', 'start_background_task', 'sleep', 'on',
                      'transport', 'create_queue', 'create_event', 'generate_id')


@pytest.mark.parametrize('name', DOCUMENTED_METHODS)
def test_methods_take_what_python_engineio_takes(name):
    """Every call python-engineio's signature allows binds to ours, by position and by name."""
    theirs = inspect.signature(getattr(engineio.Server, name))
    ours = inspect.signature(getattr(engineio_wsgi.Server(async_mode='threading'), name))
    positional, named = [], {}
    for param in list(theirs.parameters.values())[1:]:  # without self
        if param.kind is param.VAR_POSITIONAL:
            positional += ['extra1', 'extra2']
        elif param.kind is param.VAR_KEYWORD:
            named['extra'] = 'x'
        elif param.kind is param.POSITIONAL_OR_KEYWORD:
            positional.append(param.name)
    ours.bind(*positional, **named)
    keywords = [p.name for p in list(theirs.parameters.values())[1:]
                if p.kind is p.POSITIONAL_OR_KEYWORD]
    ours.bind(**{k: k for k in keywords})


def test_wsgiapp_takes_python_engineios_arguments_by_position_and_by_name():
    theirs = [p.name for p in inspect.signature(engineio.WSGIApp.__init__).parameters.values()][1:]
    assert theirs == ['engineio_app', 'wsgi_app', 'static_files', 'engineio_path']
    ours = inspect.signature(engineio_wsgi.WSGIApp.__init__)
    ours.bind('self', *theirs)
    ours.bind('self', **{name: name for name in theirs})


def _two(sid, reason):
    return ('two', reason)


def _one(sid):
    return ('one',)


def _default(sid, reason=None):
    return ('default', reason)


def _star(*args):
    return ('star', args[1:])


@pytest.mark.parametrize('handler, expected', [
    (_two, ('two', 'client disconnect')),
    (_one, ('one',)),
    (_default, ('default', 'client disconnect')),
    (_star, ('star', ('client disconnect',))),
])
def test_disconnect_handlers_with_and_without_the_reason(handler, expected):
    def scenario(engine):
        seen = []
        with running(engine) as (eio, app):
            @functools.wraps(handler)  # keeps the handler's signature
            def record(*args):
                seen.append(handler(*args))
            eio.on('disconnect', record)
            sid = open_sid(app.get(HANDSHAKE))
            app.post(HANDSHAKE + '&sid=' + sid, b'1', content_type='text/plain')
        return seen
    assert outcomes(scenario) == {PYEIO: [expected], OURS: [expected]}


@pytest.mark.parametrize('options, accept, encoding', [
    ({}, 'gzip', 'gzip'),
    ({}, 'deflate', 'deflate'),
    ({}, 'gzip, deflate', 'gzip'),
    ({}, '', None),
    ({'http_compression': False}, 'gzip', None),
    ({'compression_threshold': 10_000}, 'gzip', None),
])
def test_poll_responses_are_compressed_by_the_same_options(options, accept, encoding):
    def scenario(engine):
        with running(engine, **options) as (eio, app):
            eio.on('connect', lambda sid, environ: eio.send(sid, 'x' * 2000))
            # webob directly: webtest would decode the body and drop Content-Encoding
            request = webob.Request.blank(HANDSHAKE, headers={'Accept-Encoding': accept},
                                          environ={'wsgi.multithread': True})
            status, headers, chunks = request.call_application(app.app)
            body = b''.join(chunks)
            encoding = dict(headers).get('Content-Encoding')
            if encoding == 'gzip':
                body = gzip.decompress(body)
            elif encoding == 'deflate':
                body = zlib.decompress(body)
            return encoding, body.split(b'\x1e')[-1]
    expected = (encoding, b'4' + b'x' * 2000)
    assert outcomes(scenario) == {PYEIO: expected, OURS: expected}


def open_packet(engine, **options):
    with running(engine, **options) as (_, app):
        body = app.get(HANDSHAKE).body
        info = json.loads(body[1:].split(b'\x1e')[0])
        del info['sid']
        return info


def test_the_open_packet_advertises_the_same_settings():
    options = dict(ping_interval=10, ping_timeout=5, max_http_buffer_size=5000,
                   allow_upgrades=False)
    expected = {'upgrades': [], 'pingInterval': 10000, 'pingTimeout': 5000, 'maxPayload': 5000}
    assert outcomes(open_packet, **options) == {PYEIO: expected, OURS: expected}


def test_the_ping_grace_is_not_advertised_here():
    # python-engineio advertises interval + grace (30 s), though it pings every 25 s
    found = outcomes(open_packet, ping_interval=(25, 5), allow_upgrades=False)
    assert (found[PYEIO]['pingInterval'], found[OURS]['pingInterval']) == (30000, 25000)

