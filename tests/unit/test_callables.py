"""One answer in one place: how an application's callables are read (the
disconnect handler and the CORS check), and why bad input closes a session
(polling and WebSocket)."""

from __future__ import annotations

import functools

import pytest

from engineio_wsgi import Server
from engineio_wsgi.callables import takes_args
from engineio_wsgi.cors import CorsPolicy
from engineio_wsgi.request import Request


class Unreadable:
    """A callable whose signature Python cannot read (as some builtins)."""

    __signature__ = 'not a signature'

    def __init__(self):
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args)
        return True


def short(a): ...
def long(a, b): ...
def star(*args): ...
def keyword_only(a, *, b): ...


@pytest.mark.parametrize('fn,expected', [
    (short, False), (long, True), (star, True), (keyword_only, False),
    (functools.partial(long, 1), False), (Unreadable(), True), (lambda a, b=None: 0, True),
])
def test_takes_args(fn, expected):
    assert takes_args(fn, 2) is expected


def test_cors_and_disconnect_read_an_unreadable_callable_the_same_way():
    check = Unreadable()
    environ = {'HTTP_HOST': 'x', 'HTTP_ORIGIN': 'http://a.example'}
    CorsPolicy(check, credentials=True).allows(Request(environ))
    assert check.calls == [('http://a.example', environ)]
    eio = Server(async_mode='threading')
    eio.on('disconnect', Unreadable())
    assert eio._handlers.disconnect_takes_reason is True


def test_one_close_reason_for_bad_input_on_every_transport():
    from engineio_wsgi.packets import DecodeError
    from engineio_wsgi.reasons import Reason
    from engineio_wsgi.transport import ProtocolViolation, RateLimited, reason_for
    assert reason_for(DecodeError('bad')) == Reason.PARSE_ERROR
    assert reason_for(ProtocolViolation('open from a client')) == Reason.PARSE_ERROR
    assert reason_for(RateLimited('too fast')) == Reason.TRANSPORT_ERROR
