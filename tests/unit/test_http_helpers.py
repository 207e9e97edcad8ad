import gzip
import zlib

import pytest

from engineio_wsgi.cors import CorsPolicy
from engineio_wsgi.request import Request
from engineio_wsgi.response import choose_encoding, compress, cookie_parts

ENV = {'wsgi.url_scheme': 'http', 'HTTP_HOST': 'example.com:8000'}


def req(origin: str | None, environ: dict = ENV) -> Request:
    """A request from ``origin`` (no Origin header for None) with ``environ``'s fields."""
    headers = {} if origin is None else {'HTTP_ORIGIN': origin}
    return Request({**environ, **headers})


@pytest.mark.parametrize('accept,expected', [
    ('', None),
    ('gzip', 'gzip'),
    ('deflate', 'deflate'),
    ('gzip, deflate', 'gzip'),
    ('gzip;q=0.5, deflate', 'deflate'),
    ('gzip;q=0, deflate;q=0', None),
    ('br', None),
    ('*', 'gzip'),
    ('*;q=0.1, gzip;q=0', 'deflate'),
    ('GZIP;Q=1', 'gzip'),
    ('gzip;q=bogus, deflate;q=0.2', 'deflate'),
])
def test_accept_encoding_q_values(accept, expected):
    assert choose_encoding(accept) == expected


def test_compression_threshold_and_round_trip():
    body = b'4' + b'x' * 2000
    headers = []
    assert compress(b'4small', 'gzip', 1024, headers) == b'4small'
    assert headers == []
    out = compress(body, 'gzip', 1024, headers)
    assert gzip.decompress(out) == body and ('Content-Encoding', 'gzip') in headers
    headers = []
    out = compress(body, 'deflate', 1024, headers)
    assert zlib.decompress(out) == body and ('Content-Encoding', 'deflate') in headers


def test_same_origin_default():
    policy = CorsPolicy(None, True)
    assert policy.allows(req(None, ENV))
    assert policy.allows(req('http://example.com:8000', ENV))
    assert not policy.allows(req('http://evil.com', ENV))
    assert not policy.allows(req('https://example.com:8000', ENV))
    proxied = {**ENV, 'HTTP_X_FORWARDED_PROTO': 'https', 'HTTP_X_FORWARDED_HOST': 'app.io'}
    assert policy.allows(req('https://app.io', proxied))
    assert policy.allows(req('https://app.io:443', proxied))


def test_list_star_callable_and_empty():
    assert CorsPolicy(['http://a.com'], True).allows(req('http://a.com', ENV))
    assert not CorsPolicy(['http://a.com'], True).allows(req('http://b.com', ENV))
    assert CorsPolicy('*', True).allows(req('http://b.com', ENV))
    assert CorsPolicy(lambda o: o.endswith('.ok'), True).allows(req('http://x.ok', ENV))
    assert not CorsPolicy(lambda o, env: False, True).allows(req('http://x.ok', ENV))
    off = CorsPolicy([], True)
    assert off.allows(req('http://anything', ENV))
    assert off.headers(req('http://anything', ENV)) == []


def test_headers_echo_the_origin_never_star():
    headers = dict(CorsPolicy('*', True).headers(req('http://a.com', ENV)))
    assert headers['Access-Control-Allow-Origin'] == 'http://a.com'
    assert headers['Vary'] == 'Origin'
    assert headers['Access-Control-Allow-Credentials'] == 'true'
    no_creds = dict(CorsPolicy('*', False).headers(req('http://a.com', ENV)))
    assert 'Access-Control-Allow-Credentials' not in no_creds


def test_preflight_headers():
    env = {**ENV, 'HTTP_ACCESS_CONTROL_REQUEST_HEADERS': 'content-type, x-token'}
    headers = dict(CorsPolicy('*', True).headers(req('http://a.com', env), preflight=True))
    assert headers['Access-Control-Allow-Methods'] == 'GET, POST, OPTIONS'
    assert headers['Access-Control-Allow-Headers'] == 'content-type, x-token'


@pytest.mark.parametrize('requested, echoed', [
    ('x-token', 'x-token'),
    ('content-type,x-requested-with', 'content-type,x-requested-with'),
    (' content-type , x-token ', ' content-type , x-token '),
    ('\u0100', None),                  # not a header name (and not Latin-1)
    ('x-a\r\nSet-Cookie: a=b', None),  # a header of its own
    ('x a', None),
    ('x-a,,x-b', None),
    (',', None),
])
def test_preflight_echoes_only_a_list_of_header_names(requested, echoed):
    env = {**ENV, 'HTTP_ACCESS_CONTROL_REQUEST_HEADERS': requested}
    headers = dict(CorsPolicy('*', True).headers(req('http://a.com', env), preflight=True))
    assert headers.get('Access-Control-Allow-Headers') == echoed


def test_cookie_parts():
    assert cookie_parts({'name': 'io'}) == ('io', '; Path=/; HttpOnly; SameSite=Lax')
    assert cookie_parts({'name': 'x', 'samesite': 'None', 'secure': True, 'httponly': False}) == (
        'x', '; Path=/; SameSite=None; Secure')
