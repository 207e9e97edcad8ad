"""What a process does with the messages of the others: bytes that do not
decode are "malformed" (one WARNING per sender and minute, naming the kind
and the sender); anything that goes wrong after decoding is a bug, logged
with its traceback (and a request it was applying answered 500).

The owner here is a ``Server(cluster=...)`` in the test process (so that the
test sees its log records), on a real redis-server; the other process is a
real gunicorn worker."""

from __future__ import annotations

import json
import logging

import pytest
import webtest

from engineio_wsgi import WSGIApp
from engineio_wsgi.cluster.connect import redis_client
from engineio_wsgi.cluster.inbox import OncePer, channel
from engineio_wsgi.cluster.wire import MalformedMessage, decode, encode, frame, unframe
from engineio_wsgi.packets import Packet as EioPacket
from engineio_wsgi.packets import PacketType
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.reasons import Reason
from engineio_wsgi.server import Server
from engineio_wsgi.session import Session
from tests.live import Packet, PollingClient, expect_error, http_request, wait_until


@pytest.fixture
def owner(redis_server, caplog):
    """A cluster Server of this process, listening on the test's Redis."""
    caplog.set_level(logging.DEBUG, logger='engineio_wsgi')
    eio = Server(cluster=redis_server.url, async_mode='threading')
    eio._cluster.start()
    assert eio._cluster.inbox.subscribed.is_set()
    try:
        yield eio
    finally:
        eio.shutdown()
        eio._cluster.inbox.stop()


@pytest.fixture
def other(redis_server, gunicorns):
    """Another process of the cluster (tests/apps/cluster_echo.py)."""
    (server,) = gunicorns(1, ['-k', 'gevent'], app='tests.apps.cluster_echo:app',
                          env={'EIO_CLUSTER': redis_server.url})
    return server


def open_session(eio: Server) -> str:
    resp = webtest.TestApp(WSGIApp(eio)).get('/engine.io/?EIO=4&transport=polling')
    return json.loads(resp.text[1:])['sid']


def records(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.levelno == level and r.name.startswith('engineio_wsgi.cluster')]


SID = 'AbCd' + 'x' * 16


@pytest.mark.parametrize(('message', 'kind', 'problem'), [
    ({'t': 'post', 's': SID, 'p': []}, 'post', "'r' missing"),
    ({'t': 'post', 'r': True, 's': SID, 'p': []}, 'post', "'r': expected a number"),
    ({'t': 'post', 'r': 1, 's': 'short', 'p': []}, 'post', "'s': expected a sid"),
    ({'t': 'post', 'r': 1, 's': SID, 'p': [[9, 'x']]}, 'post', "'p': packet type"),
    ({'t': 'post', 'r': 1, 's': SID, 'p': [[4, '!!', 1]]}, 'post', 'invalid base64'),
    ({'t': 'post', 'r': 1, 's': SID, 'p': [[2, 'aGk=', 1]]}, 'post', 'binary packet'),
    ({'t': 'post', 'r': 1, 's': SID, 'p': [[4, 7]]}, 'post', 'expected text'),
    ({'t': 'post', 'r': 1, 's': SID, 'p': [[4, '\ud800']]}, 'post', 'UTF-8'),
    ({'t': 'post', 'r': 1, 's': SID, 'p': [], 'e': 5}, 'post', "'e': expected text"),
    ({'t': 'send', 's': SID, 'p': [[1, None]]}, 'send', 'only messages'),
    ({'t': 'close', 's': SID, 'why': 'x' * 1000}, 'close', "'why': expected a reason"),
    ({'t': 'reply', 'r': 1, 'ok': False}, 'reply', 'without status and code'),
    ({'t': 'reply', 'r': 1, 'ok': False, 'status': 999, 'code': 3}, 'reply', "'status'"),
    ({'t': 'reply', 'r': 1, 'ok': True, 'p': []}, 'reply', 'packets without a sid'),
    ({'t': 'out', 's': SID, 'relay': '1', 'p': []}, 'out', "'relay': expected a number"),
    ({'t': 'y' * 1000}, 'y' * 20, 'unknown message type'),
    ({'r': 1}, None, 'unknown message type'),
])
def test_decoding_refuses_every_field_that_is_not_as_the_kind_needs(message, kind, problem):
    with pytest.raises(MalformedMessage) as caught:
        decode(encode(message))   # json.dumps writes a lone surrogate as \ud800
    assert caught.value.kind == kind
    assert problem in str(caught.value)
    assert len(str(caught.value)) < 100     # never the sender's text at length


@pytest.mark.parametrize('data', [b'[1]', b'not json', b'\xff\xfe', b'[' * 100_000])
def test_a_payload_that_is_no_json_object_is_malformed(data):
    with pytest.raises(MalformedMessage) as caught:
        decode(data)
    assert caught.value.kind is None


def test_a_decoded_message_is_ready_to_apply():
    message = decode(encode({'t': 'post', 'r': 3, 's': SID, 'p': [[4, 'aGk=', 1], [4, 'h\u00e9']],
                             'e': 'bad packet'}))
    assert message['p'] == [EioPacket(PacketType.MESSAGE, b'hi'),
                            EioPacket(PacketType.MESSAGE, 'h\u00e9')]
    assert decode(encode({'t': 'gone', 's': SID, 'relay': 2, 'why': 'transport close'}))[
        'why'] is Reason.TRANSPORT_CLOSE
    assert unframe(frame('AbCd', 2**64 - 1, 5, b'{}')) == ('AbCd', 2**64 - 1, 5, b'{}')
    with pytest.raises(MalformedMessage, match='cut short'):
        unframe(frame('AbCd', 1, 5, b'')[:-1])


def test_a_malformed_message_is_one_warning_per_sender_and_minute(owner, redis_server, caplog):
    node = owner._cluster.node
    client = redis_client(redis_server.url)
    sid = node + 'A' * 16
    try:
        for data in (
            frame('EVIL', 1, 1, encode({'t': 'send', 's': sid, 'p': 'nope'})),
            frame('EVIL', 1, 2, b'not json'),      # the same sender within the minute
            b'garbage',                             # no frame at all: no sender either
            b'E1OLDV' + bytes(8) + b'{"t":"send"}',  # a process of the former format
            frame('OTHR', 1, 1, encode({'t': 'nonsense'})),
        ):
            assert client.publish(channel(node), data) == 1
        # one listener handles the messages in publish order: once OTHR's
        # warning is there, every message before it was handled
        wait_until(lambda: any("'OTHR'" in r.getMessage() for r in records(caplog, logging.WARNING)),
                   timeout=5, message="the warning about OTHR's message")
    finally:
        client.close()
    warnings = [r.getMessage() for r in records(caplog, logging.WARNING)]
    assert len(warnings) == 4, warnings
    assert warnings[0].startswith(f"cluster node {node} dropped a malformed message "
                                  "(kind 'send') from node 'EVIL': 'p': expected a list"), warnings
    assert '(kind unknown) from an unknown sender: not a frame' in warnings[1], warnings
    assert "(kind unknown) from node 'OLDV': frame of wire format b'E1'" in warnings[2], warnings
    assert "(kind 'nonsense') from node 'OTHR': unknown message type" in warnings[3], warnings
    assert owner._cluster.inbox.dropped_malformed == 5
    assert records(caplog, logging.ERROR) == []


def test_the_warning_limit_is_once_a_minute_per_sender_and_bounded():
    now = [1000.0]
    once = OncePer(60.0, size=2, clock=lambda: now[0])
    assert once('a') is True
    assert once('b') is True
    now[0] += 59.9
    assert once('a') is False and once('b') is False
    now[0] += 0.1
    assert once('a') is True
    assert once('a') is False
    assert once(None) is True          # the unknown sender is one sender
    # a third sender: the least recently warned about ('b') is forgotten
    assert once('c') is True
    assert once('b') is True
    assert once('c') is False


def test_a_bug_while_applying_a_send_is_logged_with_its_traceback(owner, other, caplog,
                                                                    monkeypatch):
    sid = open_session(owner)
    enqueue = Session.enqueue

    def failing(self, packet):
        if self.sid == sid and packet.type is PacketType.MESSAGE:
            raise KeyError('a bug of ours')
        return enqueue(self, packet)
    monkeypatch.setattr(Session, 'enqueue', failing)
    # eio.send() on the other process for this process's session
    assert http_request(other.port, 'GET', f'/__send?sid={sid}&data=hi').text == 'done'
    wait_until(lambda: records(caplog, logging.ERROR), timeout=5, message='the bug logged')
    (record,) = records(caplog, logging.ERROR)
    assert sid in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert not [r for r in caplog.records if 'malformed' in r.getMessage()]


def test_a_bug_while_applying_a_forwarded_post_is_answered_500_and_logged(owner, other, caplog,
                                                                         monkeypatch):
    sid = open_session(owner)
    begin_post = PollingTransport.begin_post

    def failing(self, abort=None):
        if self._session.sid == sid:
            raise TypeError('a bug of ours')
        return begin_post(self, abort)
    monkeypatch.setattr(PollingTransport, 'begin_post', failing)
    client = PollingClient(other.port)
    client.sid = sid
    # the other process serves the POST for this one: it answers as this one did
    assert expect_error(client.post(Packet.message('hi')), 500, 3) == {
        'code': 3, 'message': 'Internal server error'}
    (record,) = records(caplog, logging.ERROR)
    assert sid in record.getMessage() and "'begin'" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is TypeError
    assert not [r for r in caplog.records if 'malformed' in r.getMessage()]
