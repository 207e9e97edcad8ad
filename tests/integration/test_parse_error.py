"""A parse error in the middle of what a client sent: the packets before the bad
one reach the application, and whatever the application sends while handling
them reaches the client before the close packet ``1`` (PROTOCOL.md, last row
of "What each client packet does"). The echo app runs its handlers off the I/O
path (async_handlers=True), so the close has to wait for them; ``__block``
makes one of them take a while.
"""

from __future__ import annotations

import json

import pytest
import websocket  # websocket-client

from tests.live import (
    CLOSE,
    MESSAGE,
    NOOP,
    PING,
    Background,
    Packet,
    PollingClient,
    decode_payload,
    disconnect_reasons,
    expect_error,
    wait_until,
)


def messages_until_close(client: PollingClient, first: list[Packet] = (),
                         timeout: float = 5.0) -> list[str | bytes]:
    """Poll until the close packet (``first``: a payload already received);
    the messages that came before it."""
    messages: list[str | bytes] = []
    payloads = [list(first)] if first else []
    for _ in range(50):
        if not payloads:
            resp = client.get(timeout=timeout)
            assert resp.status == 200, f'no close packet; got {messages!r}, then {resp}'
            payloads.append(decode_payload(resp.body))
        for packet in payloads.pop():
            if packet.type == MESSAGE:
                messages.append(packet.data)
            elif packet.type == CLOSE:
                return messages
            else:
                assert packet.type in (NOOP, PING), packet
    raise AssertionError(f'no close packet after 50 polls: {messages!r}')


def opened(server) -> PollingClient:
    c = PollingClient(server)
    c.handshake()
    return c


@pytest.mark.parametrize('bad', [b'9bad', b'0', b'2', b'bnot base64!', b'\xff'])
def test_replies_to_packets_before_the_bad_one_come_before_the_close(server, bad):
    c = opened(server)
    body = b'\x1e'.join([b'4a', b'4__block 0.3', b'4__send 2', b'4b', bad])
    expect_error(c.post(body=body), 400, 3)
    assert messages_until_close(c) == ['a', 'unblocked', 'm0', 'm1', 'b']
    c.expect_closed(reason='parse error')


def test_a_get_waiting_during_the_bad_post_gets_the_replies_then_the_close(server):
    c = opened(server)
    waiting = Background(c.get, timeout=5)
    wait_until(lambda: f'echo: connect {c.sid}' in server.log(), message='session open')
    expect_error(c.post(body=b'4a\x1e4__block 0.3\x1e4b\x1e7'), 400, 3)
    resp = waiting.result()
    assert resp.status == 200, resp
    assert messages_until_close(c, decode_payload(resp.body)) == ['a', 'unblocked', 'b']
    c.expect_closed(reason='parse error')


def test_a_post_after_the_bad_one_is_refused_and_its_messages_dropped(server):
    c = opened(server)
    expect_error(c.post(body=b'4__block 0.5\x1e7'), 400, 3)
    expect_error(c.post('late'), 400, 1)
    assert messages_until_close(c) == ['unblocked']
    c.expect_closed(reason='parse error')
    assert f"echo: message {c.sid} 'late'" not in server.log()


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
