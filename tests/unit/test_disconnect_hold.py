"""While the application ends a session itself (``Server.disconnecting``), the
engine's disconnect event for it waits until the application is done."""

from __future__ import annotations

import threading

import engineio_wsgi


def test_an_end_that_arrives_while_held_is_reported_when_the_hold_ends():
    eio = engineio_wsgi.Server(async_mode='threading')
    calls = []
    eio.on('disconnect', lambda sid, reason: calls.append((sid, reason, threading.get_ident())))
    handlers = eio._handlers

    class Ended:
        sid = 'abc'
    handlers.reachable['abc'] = Ended()
    with eio.disconnecting('abc'):
        # the client's end, reported from another thread (as the reader's)
        reader = threading.Thread(target=handlers.disconnect, args=(Ended(), 'transport close'))
        reader.start()
        reader.join(5)
        assert not reader.is_alive()
        assert calls == []                           # held back
        assert handlers.readable('abc') is not None  # still readable inside
    assert calls == [('abc', 'transport close', threading.get_ident())]
    assert 'abc' not in handlers.reachable


def test_no_end_while_held_reports_nothing_and_later_ends_are_not_held():
    eio = engineio_wsgi.Server(async_mode='threading')
    calls = []
    eio.on('disconnect', lambda sid, reason: calls.append(reason))

    class Ended:
        sid = 'abc'
    with eio.disconnecting('abc'):
        with eio.disconnecting('abc'):   # nested: the outer block decides
            pass
        eio._handlers.disconnect(Ended(), 'transport close')
        assert calls == []
    assert calls == ['transport close']
    eio._handlers.disconnect(Ended(), 'ping timeout')
    assert calls == ['transport close', 'ping timeout']
