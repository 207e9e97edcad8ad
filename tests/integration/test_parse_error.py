"""A parse error in the middle of what a client sent (PROTOCOL.md, last row of
"What each client packet does"): the packets before the bad one reach the
application; the session is gone for the client at once. Over polling only a
GET already waiting hears of the end: it brings what the application sends
while handling those packets, then the close packet ``1``; any later request
gets 400 code 1. Over WebSocket the replies, then ``1``, go on the socket. The
echo app runs its handlers off the I/O path (async_handlers=True), so the
close has to wait for them; ``__block`` makes one of them take a while.
"""

from __future__ import annotations

import json

import pytest
import websocket  # websocket-client

from tests.live import (
    CLOSE,
    MESSAGE,
    PING,
    PollingClient,
    decode_payload,
    disconnect_reasons,
    expect_error,
    messages_received,
    wait_until,
    waiting_get,
)


def opened(server) -> PollingClient:
    c = PollingClient(server)
    c.handshake()
    return c


@pytest.mark.parametrize('bad', [b'9bad', b'0', b'2', b'bnot base64!', b'\xff'])
def test_with_no_get_waiting_the_next_get_is_refused_at_once(server, bad):
    c = opened(server)
    body = b'\x1e'.join([b'4a', b'4__block 0.3', b'4__send 2', b'4b', bad])
    expect_error(c.post(body=body), 400, 3)
    # refused while the application still handles the packets before the bad one
    expect_error(c.get(timeout=5), 400, 1)
    c.expect_reason('parse error')
    assert messages_received(server, c.sid) == ["'a'", "'__block 0.3'", "'__send 2'", "'b'"]


def test_a_get_waiting_during_the_bad_post_gets_the_replies_then_the_close(server):
    c = opened(server)
    waiting = waiting_get(c, 5)
    expect_error(c.post(body=b'4a\x1e4__block 0.3\x1e4b\x1e7'), 400, 3)
    resp = waiting.result()
    assert resp.status == 200, resp
    # one response: the replies, then the close (a ping may fall in between)
    packets = [p for p in decode_payload(resp.body) if p.type != PING]
    assert [p.type for p in packets] == [MESSAGE, MESSAGE, MESSAGE, CLOSE], packets
    assert [p.data for p in packets[:3]] == ['a', 'unblocked', 'b']
    c.expect_gone('parse error')


def test_a_post_after_the_bad_one_is_refused_and_its_messages_dropped(server):
    c = opened(server)
    expect_error(c.post(body=b'4__block 0.5\x1e7'), 400, 3)
    expect_error(c.post('late'), 400, 1)
    c.expect_gone('parse error')
    assert messages_received(server, c.sid) == ["'__block 0.5'"]


def test_websocket_replies_before_the_bad_frame_come_before_the_close(server):
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket', timeout=5)
    try:
        first = ws.recv()
        assert first.startswith('0'), first
        sid = json.loads(first[1:])['sid']
        for frame in ('4a', '4__block 0.3', '4b', '9bad', '4after the bad one'):
            ws.send(frame)
        got = []
        while not got or got[-1] != '1':
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data, got)
            if data != b'2':
                got.append(data.decode())
        assert got == ['4a', '4unblocked', '4b', '1']
    finally:
        ws.close(timeout=0.5)
    assert wait_until(lambda: disconnect_reasons(server, sid), 5) == ['parse error']
    assert f"echo: message {sid} 'after the bad one'" not in server.log()
