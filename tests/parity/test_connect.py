"""The connect handler's return value decides, as in python-engineio.

None or True accepts; anything else refuses. A refusal's message is what the
handler returned (a string, a dict, a number, a list), or "Unauthorized" for
False and other empty values, or when the handler raised.
"""

from __future__ import annotations

import pytest

from engineio_wsgi import ConnectionRefusedError

from .engines import (
    HANDSHAKE,
    OURS,
    PYEIO,
    WEBSOCKET_HEADERS,
    open_sid,
    outcomes,
    refusal_message,
    running,
    session_count,
)


def connect_returning(engine: str, value: object, websocket: bool = False) -> tuple:
    """('accepted',) or ('refused', message), and how many sessions were left."""
    with running(engine) as (eio, app):
        eio.on('connect', lambda sid, environ: value)
        if websocket:
            res = app.get(HANDSHAKE.replace('polling', 'websocket'), headers=WEBSOCKET_HEADERS,
                          expect_errors=True)
        else:
            res = app.get(HANDSHAKE, expect_errors=True)
        left = session_count(engine, eio)
        if open_sid(res) is not None:
            return ('accepted', left)
        return ('refused', refusal_message(engine, res), left)


@pytest.mark.parametrize('value', [None, True])
def test_none_and_true_accept(value):
    assert outcomes(connect_returning, value) == {PYEIO: ('accepted', 1), OURS: ('accepted', 1)}


@pytest.mark.parametrize('value, message', [
    (False, 'Unauthorized'),
    (0, 'Unauthorized'),
    ('', 'Unauthorized'),
    ([], 'Unauthorized'),
    ({}, 'Unauthorized'),
    ('come back later', 'come back later'),
    ({'reason': 'banned', 'retry': 30}, {'reason': 'banned', 'retry': 30}),
    (7, 7),
    (['a', 1], ['a', 1]),
])
def test_any_other_value_refuses_with_it_as_the_message(value, message):
    expected = ('refused', message, 0)
    assert outcomes(connect_returning, value) == {PYEIO: expected, OURS: expected}


def test_a_websocket_handshake_is_refused_the_same_way_before_the_upgrade():
    expected = ('refused', 'no sockets for you', 0)
    assert outcomes(connect_returning, 'no sockets for you', websocket=True) == {
        PYEIO: expected, OURS: expected}


def connect_raising(engine: str) -> tuple:
    def on_connect(sid, environ):
        raise RuntimeError('internal detail')
    with running(engine) as (eio, app):
        eio.on('connect', on_connect)
        res = app.get(HANDSHAKE, expect_errors=True)
        return ('refused', refusal_message(engine, res), session_count(engine, eio))


def test_a_handler_that_raises_refuses_without_telling_why():
    expected = ('refused', 'Unauthorized', 0)
    assert outcomes(connect_raising) == {PYEIO: expected, OURS: expected}


# engineio_wsgi's own forms (python-engineio has no ConnectionRefusedError and
# would send (False, reason) as the JSON list [false, reason])

def refused_here(on_connect) -> object:
    with running(OURS) as (eio, app):
        eio.on('connect', on_connect)
        res = app.get(HANDSHAKE, expect_errors=True)
        assert eio.session_count() == 0
        return refusal_message(OURS, res)


def test_connection_refused_error_carries_its_reason():
    def refuse(sid, environ):
        raise ConnectionRefusedError('not today')
    assert refused_here(refuse) == 'not today'

    def refuse_silently(sid, environ):
        raise ConnectionRefusedError()
    assert refused_here(refuse_silently) == 'Unauthorized'

    def refuse_with_data(sid, environ):
        raise ConnectionRefusedError({'reason': 'banned', 'retry': 30})
    # like a returned value: JSON data stays JSON data
    assert refused_here(refuse_with_data) == {'reason': 'banned', 'retry': 30}


def test_false_with_a_reason():
    assert refused_here(lambda sid, environ: (False, 'why not')) == 'why not'


def test_a_value_json_cannot_carry_refuses_with_the_default_message(caplog):
    # python-engineio fails with a 500 here (json.dumps raises)
    assert refused_here(lambda sid, environ: object()) == 'Unauthorized'
    assert any('JSON' in r.getMessage() for r in caplog.records), caplog.records
