"""The sid cookie: attribute values may be callables, called at every handshake."""

from __future__ import annotations

import itertools

from .engines import HANDSHAKE, OURS, PYEIO, open_sid, outcomes, running


def parse_cookie(header: str) -> tuple[str, dict[str, object]]:
    """(name, attributes) with attribute names lowercased (they are case-insensitive)."""
    first, *attrs = [part.strip() for part in header.split(';')]
    name, _, _ = first.partition('=')
    parsed: dict[str, object] = {}
    for attr in attrs:
        key, eq, value = attr.partition('=')
        parsed[key.lower()] = value if eq else True
    return name, parsed


def two_handshakes(engine: str, cookie: object) -> list[tuple]:
    with running(engine, cookie=cookie) as (_, app):
        found = []
        for _ in range(2):
            res = app.get(HANDSHAKE)
            sid = open_sid(res)
            header = res.headers['Set-Cookie']
            assert header.split(';')[0] == f'{parse_cookie(header)[0]}={sid}'
            found.append(parse_cookie(header))
        return found


def test_callable_attributes_are_called_per_handshake():
    def cookie() -> dict[str, object]:
        ages = itertools.count(100)
        # every attribute given, so that neither engine adds its defaults
        return {'name': 'route', 'path': '/app', 'SameSite': lambda: 'Strict',
                'Secure': lambda: True, 'HttpOnly': True, 'Max-Age': lambda: str(next(ages))}
    attrs = {'path': '/app', 'samesite': 'Strict', 'secure': True, 'httponly': True}
    expected = [('route', {**attrs, 'max-age': '100'}), ('route', {**attrs, 'max-age': '101'})]
    # a fresh counter for each engine
    assert {engine: two_handshakes(engine, cookie()) for engine in (PYEIO, OURS)} == {
        PYEIO: expected, OURS: expected}


def test_plain_attributes_given_in_full():
    cookie = {'name': 'io', 'path': '/', 'SameSite': 'None', 'Secure': True, 'HttpOnly': True}
    expected = [('io', {'path': '/', 'samesite': 'None', 'secure': True, 'httponly': True})] * 2
    assert outcomes(two_handshakes, cookie) == {PYEIO: expected, OURS: expected}


def test_defaults_differ_on_purpose():
    # python-engineio: only what is given (a name: path=/ and SameSite=Lax);
    # engineio_wsgi: Path=/, HttpOnly and SameSite=Lax unless told otherwise
    assert outcomes(two_handshakes, 'io') == {
        PYEIO: [('io', {'path': '/', 'samesite': 'Lax'})] * 2,
        OURS: [('io', {'path': '/', 'samesite': 'Lax', 'httponly': True})] * 2}
    assert two_handshakes(OURS, {'name': 'io', 'httponly': False, 'path': '/x'}) == [
        ('io', {'path': '/x', 'samesite': 'Lax'})] * 2


def test_a_callable_returning_a_header_breaking_value_fails_the_handshake_and_opens_nothing():
    connected = []
    with running(OURS, cookie={'domain': lambda: 'a.example\r\nX-Evil: 1'}) as (eio, app):
        eio.on('connect', lambda sid, environ: connected.append(sid))
        res = app.get(HANDSHAKE, expect_errors=True)
        assert (res.status_int, res.json['code']) == (503, 3)
        assert 'Set-Cookie' not in res.headers
        assert eio.session_count() == 0 and connected == []
