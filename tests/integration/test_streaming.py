"""An application that streams to a WebSocket client must not starve that
connection's reads: what the client sends (its pongs, its messages) is read
while the stream goes on, not after it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import websocket  # websocket-client

from tests.integration.conftest import KINDS
from tests.live import LiveServer, start_server

# The connect handler queues 4 MB (more than the loopback socket buffers hold)
# and a background task keeps sending for half a second: the session's writer
# has work all along while the client catches up.
STREAM = {'STREAM_PRELOAD': '4000', 'STREAM_SIZE': '1000', 'STREAM_SECONDS': '0.5',
          'STREAM_BURST': '20', 'STREAM_PAUSE': '0.001', 'EIO_MAX_QUEUED_PACKETS': '100000',
          # pings wait behind the stream like any packet; the timeout allows for it
          'EIO_PING_INTERVAL': '0.3', 'EIO_PING_TIMEOUT': '5'}


@pytest.fixture(scope='module', params=KINDS)
def stream_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with start_server(request.param, 'tests.apps.stream:app',
                      env={**STREAM, 'EIO_LOG_LEVEL': 'INFO'}) as server:
        yield server


def test_the_client_is_read_while_the_application_streams(stream_server: LiveServer):
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{stream_server.port}/engine.io/?EIO=4&transport=websocket', timeout=10)
    try:
        assert ws.recv().startswith('0{')
        ws.send('4mark')
        # part of the scenario: a client busy elsewhere for a moment, so that
        # the server's writes block and its queue stays full
        time.sleep(0.5)
        messages = pings = 0
        mark_at = None
        while True:
            frame = ws.recv()
            assert frame != '1', f'session closed after {messages} messages'
            if frame == '2':
                pings += 1
                ws.send('3')
            elif frame == '4mark':
                mark_at = messages
            elif frame.startswith('4stream done '):
                sent = int(frame.split()[-1])
                break
            else:
                assert frame.startswith('4s'), frame[:40]
                messages += 1
        assert messages == sent
        # the echo of 'mark' was queued when the server read it: before the
        # stream ended, not once the application stopped writing
        assert mark_at is not None, 'the client\'s message was read only after the stream'
        assert mark_at < sent
        assert pings >= 1
    finally:
        ws.close()
    assert 'ping timeout' not in stream_server.log()


@pytest.fixture(scope='module', params=KINDS)
def plain_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    with start_server(request.param, 'tests.apps.stream:app',
                      env={'EIO_PING_INTERVAL': '1', 'EIO_PING_TIMEOUT': '1',
                           'EIO_LOG_LEVEL': 'INFO'}) as server:
        yield server


def test_text_that_cannot_be_encoded_is_refused_at_send_on_websocket(plain_server: LiveServer):
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{plain_server.port}/engine.io/?EIO=4&transport=websocket', timeout=10)
    try:
        assert ws.recv().startswith('0{')
        ws.send('4__badtext')
        assert ws.recv() == '4refused ValueError'
        ws.send('4still here')
        assert ws.recv() == '4still here'
    finally:
        ws.close()
    assert 'transport error' not in plain_server.log()
