"""``cors_allowed_origins``: '*' inside a list (or tuple) allows any origin."""

from __future__ import annotations

import pytest

from .engines import HANDSHAKE, OURS, PYEIO, open_sid, outcomes, running


def handshake_from(engine: str, allowed: object, origin: str) -> tuple:
    """('open', Access-Control-Allow-Origin) or ('refused',)."""
    with running(engine, cors_allowed_origins=allowed) as (_, app):
        res = app.get(HANDSHAKE, headers={'Origin': origin}, expect_errors=True)
        if open_sid(res) is not None:
            return ('open', res.headers.get('Access-Control-Allow-Origin'))
        # python-engineio answers 400, engineio_wsgi 403 code 4 (PROTOCOL.md)
        assert res.status_int == (400 if engine == PYEIO else 403), res
        return ('refused',)


@pytest.mark.parametrize('allowed', [
    ['https://a.example', '*'],
    ['*'],
    ('https://a.example', '*'),
])
def test_a_star_in_the_list_allows_any_origin(allowed):
    expected = ('open', 'https://b.example')
    assert outcomes(handshake_from, allowed, 'https://b.example') == {
        PYEIO: expected, OURS: expected}


@pytest.mark.parametrize('allowed, origin, expected', [
    (['https://a.example'], 'https://a.example', ('open', 'https://a.example')),
    (['https://a.example'], 'https://b.example', ('refused',)),
    ('https://a.example', 'https://a.example', ('open', 'https://a.example')),
    ('*', 'https://b.example', ('open', 'https://b.example')),
])
def test_lists_and_strings_without_a_star(allowed, origin, expected):
    assert outcomes(handshake_from, allowed, origin) == {PYEIO: expected, OURS: expected}


def test_a_callable_taking_the_origin_or_the_origin_and_environ():
    def one(origin):
        return origin == 'https://a.example'

    def two(origin, environ):
        return origin == 'https://a.example' and environ['REQUEST_METHOD'] == 'GET'
    for check in (one, two):
        assert outcomes(handshake_from, check, 'https://a.example') == {
            PYEIO: ('open', 'https://a.example'), OURS: ('open', 'https://a.example')}
        assert outcomes(handshake_from, check, 'https://b.example') == {
            PYEIO: ('refused',), OURS: ('refused',)}


def test_behind_a_proxy_the_forwarded_origin_is_the_same_origin():
    # python-engineio accepts the Host the proxy talked to as well; here a
    # request that came through the proxy is same-origin only for the public origin
    forwarded = {'Host': 'internal:8000', 'X-Forwarded-Host': 'www.example',
                 'X-Forwarded-Proto': 'https'}

    def scenario(engine: str, origin: str) -> tuple:
        with running(engine) as (_, app):
            res = app.get(HANDSHAKE, headers={**forwarded, 'Origin': origin}, expect_errors=True)
            return ('open',) if open_sid(res) is not None else ('refused', res.status_int)
    assert outcomes(scenario, 'https://www.example') == {PYEIO: ('open',), OURS: ('open',)}
    assert outcomes(scenario, 'http://internal:8000') == {
        PYEIO: ('open',), OURS: ('refused', 403)}


@pytest.mark.parametrize('options, expected', [
    ({'cors_allowed_origins': '*'}, ('open', 'https://b.example', 'true')),
    ({'cors_allowed_origins': '*', 'cors_credentials': False}, ('open', 'https://b.example', None)),
    # [] turns CORS handling off: no check, no Access-Control-Allow-Origin
    ({'cors_allowed_origins': []}, ('open', None)),
])
def test_credentials_and_cors_off(options, expected):
    def scenario(engine: str) -> tuple:
        with running(engine, **options) as (_, app):
            res = app.get(HANDSHAKE, headers={'Origin': 'https://b.example'}, expect_errors=True)
            if open_sid(res) is None:
                return ('refused',)
            origin = res.headers.get('Access-Control-Allow-Origin')
            if origin is None:
                return ('open', None)
            return ('open', origin, res.headers.get('Access-Control-Allow-Credentials'))
    assert outcomes(scenario) == {PYEIO: expected, OURS: expected}
