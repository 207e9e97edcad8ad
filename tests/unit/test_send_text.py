"""Text that cannot be encoded is refused by send(), and costs the session nothing."""

from __future__ import annotations

import pytest
import webtest

from engineio_wsgi import Server, WSGIApp

EIO = '/engine.io/?EIO=4&transport=polling'


@pytest.mark.parametrize('text', ['\ud800', 'a\udfffb', 'end \udc80'])
def test_lone_surrogates_are_refused_at_send_and_the_batch_survives(text):
    eio = Server(async_mode='threading', shutdown_timeout=0.05)
    app = webtest.TestApp(WSGIApp(eio))
    sid = app.get(EIO).body.decode()[1:].split('"sid":"')[1].split('"')[0]
    eio.send(sid, 'before')
    with pytest.raises(ValueError, match='surrogate'):
        eio.send(sid, text)
    eio.send(sid, 'after')
    res = app.get(EIO + '&sid=' + sid)
    assert res.status_int == 200
    assert res.body == b'4before\x1e4after'
    eio.shutdown()


def test_lone_surrogates_are_refused_for_an_ended_session_too():
    eio = Server(async_mode='threading')
    with pytest.raises(ValueError, match='surrogate'):
        eio.send('no-such-sid', '\ud800')
