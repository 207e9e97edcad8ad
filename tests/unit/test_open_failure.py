"""A session is either fully started or not registered at all."""

from __future__ import annotations

import json

import pytest
import webtest

from engineio_wsgi import Server, WSGIApp

EIO = '/engine.io/?EIO=4&transport=polling'


def make(**kwargs):
    eio = Server(async_mode='threading', shutdown_timeout=0.05, **kwargs)
    calls = []
    eio.on('connect', lambda sid, environ: calls.append(('connect', sid)))
    eio.on('disconnect', lambda sid, reason: calls.append(('disconnect', sid, reason)))
    return eio, webtest.TestApp(WSGIApp(eio)), calls


def test_a_session_that_cannot_start_is_503_and_not_registered():
    eio, app, calls = make()
    spawn = eio.backend.spawn

    def no_thread(*args, **kwargs):
        # what threading.Thread.start raises when the process is out of threads
        raise RuntimeError("can't start new thread")
    eio.backend.spawn = no_thread
    res = app.get(EIO, expect_errors=True)
    assert (res.status_int, res.json['code']) == (503, 3)
    assert eio.session_count() == 0
    sid = calls[0][1]
    # the application was told of the connection, so it is told of its end
    assert calls == [('connect', sid), ('disconnect', sid, 'transport error')]
    assert app.get(EIO + '&sid=' + sid, expect_errors=True).json['code'] == 1
    eio.backend.spawn = spawn
    assert app.get(EIO).body[:1] == b'0'
    assert eio.session_count() == 1
    eio.shutdown()


def test_a_connect_handler_that_raises_leaves_nothing_registered():
    eio, app, _ = make()

    def connect(sid, environ):
        raise KeyboardInterrupt  # not an Exception: it passes through the guard
    eio.on('connect', connect)
    with pytest.raises(KeyboardInterrupt):
        app.get(EIO)
    assert eio.session_count() == 0
    eio.on('connect', lambda sid, environ: None)
    assert json.loads(app.get(EIO).body[1:])['sid']
    assert eio.session_count() == 1
    eio.shutdown()


@pytest.mark.parametrize('cookie', [
    {'path': '/a;b'},
    {'domain': 'example.com\r\nX-Evil: 1'},
    {'name': 'io;x'},
    {'name': ''},
    {'name': 'a b'},
    {'same site': 'Lax'},
])
def test_bad_cookie_options_are_refused_when_the_server_is_built(cookie):
    with pytest.raises(ValueError, match='cookie'):
        Server(cookie=cookie)


def test_good_cookie_options_are_accepted():
    eio, app, _ = make(cookie={'name': 'io', 'samesite': 'None', 'secure': True,
                               'max_age': 3600})
    res = app.get(EIO)
    assert res.headers['Set-Cookie'].startswith('io=')
    eio.shutdown()


@pytest.mark.parametrize('expires', [
    lambda: 1 / 0,                          # the callable fails
    lambda: 'Thu, 01 Jan 2099; Secure',     # a value that would break the header
])
def test_a_cookie_callable_that_fails_refuses_the_handshake_cleanly(expires, caplog):
    eio, app, calls = make(cookie={'name': 'io', 'expires': expires})
    with caplog.at_level('ERROR', logger='engineio_wsgi'):
        res = app.get(EIO, expect_errors=True)
    assert (res.status_int, res.json['code']) == (503, 3)
    assert eio.session_count() == 0 and calls == []     # nothing opened, nobody asked
    errors = [r for r in caplog.records if 'cookie' in r.getMessage()]
    assert len(errors) == 1 and errors[0].levelname == 'ERROR'
    assert errors[0].exc_info is None                    # one line, no traceback
