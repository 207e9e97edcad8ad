"""The packet trace: with ``logger=True`` every packet in and out is one DEBUG
line of the ``engineio_wsgi.trace`` logger (sid, direction, type, transport,
data cut to 200 characters, binary data as its length); without it, none.

Read from the log of a real server (tests/apps/echo.py with ``EIO_LOGGER=1``)
driven by real clients: plain HTTP for polling, websocket-client for frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import websocket  # websocket-client

from tests.live import (
    LiveServer,
    Packet,
    PollingClient,
    decode_payload,
    start_server,
    wait_for_session,
    wait_until,
    waiting_get,
)

TRACE = ' engineio_wsgi.trace: '


@pytest.fixture(scope='module', params=['gunicorn-gthread', 'gunicorn-gevent'])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    # the default heartbeat (25 s): no ping comes between the packets of a test
    with start_server(request.param, env=TRACED) as srv:
        yield srv


TRACED = {'EIO_LOGGER': '1', 'EIO_LOG_LEVEL': 'INFO'}


def trace(server: LiveServer, sid: str) -> list[str]:
    """The trace lines of session ``sid`` so far, without the sid, in order."""
    lines = []
    for line in server.log().splitlines():
        _, found, rest = line.partition(TRACE)
        if found and rest.startswith(sid + ' '):
            lines.append(rest[len(sid) + 1:])
    return lines


def wait_for_trace(server: LiveServer, sid: str, count: int) -> list[str]:
    """The session's first ``count`` trace lines, once logged."""
    lines = wait_until(lambda: len(trace(server, sid)) >= count and trace(server, sid),
                       message=f'{count} trace lines of {sid}')
    return lines[:count]


def ws_connect(server: LiveServer, query: str = '') -> websocket.WebSocket:
    return websocket.create_connection(
        f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket{query}', timeout=5)


def test_a_polling_session_is_traced_packet_by_packet(server: LiveServer):
    client = PollingClient(server)
    client.handshake()
    sid = client.sid
    assert client.open_response is not None and sid
    open_data = decode_payload(client.open_response.body)[0].data
    client.send('hello')
    assert client.receive(1) == ['hello']
    client.send(b'\x00\x01\x02')
    assert client.receive(1) == [b'\x00\x01\x02']
    client.close()
    assert wait_for_trace(server, sid, 6) == [
        f'sending OPEN over polling: {open_data!r}',
        "received MESSAGE over polling: 'hello'",
        "sending MESSAGE over polling: 'hello'",
        'received MESSAGE over polling: <binary, 3 bytes>',
        'sending MESSAGE over polling: <binary, 3 bytes>',
        'received CLOSE over polling',
    ]


def test_long_data_is_cut_to_200_characters_with_its_length(server: LiveServer):
    client = PollingClient(server)
    client.handshake()
    sid = client.sid
    assert sid
    client.send('x' * 5000 + '\n' + 'y')
    assert client.receive(1) == ['x' * 5000 + '\ny']
    cut = repr('x' * 200) + '... (5002 characters)'
    assert wait_for_trace(server, sid, 3)[1:] == [
        f'received MESSAGE over polling: {cut}',
        f'sending MESSAGE over polling: {cut}',
    ]
    client.close()


def test_data_is_shown_as_its_repr_so_it_cannot_forge_a_line(server: LiveServer):
    client = PollingClient(server)
    client.handshake()
    sid = client.sid
    assert sid
    client.send('a\nDEBUG forged')
    assert client.receive(1) == ['a\nDEBUG forged']
    assert wait_for_trace(server, sid, 2)[1] == r"received MESSAGE over polling: 'a\nDEBUG forged'"
    client.close()


def ws_sid(opening: str) -> str:
    assert opening.startswith('0{"sid":"'), opening
    return opening[len('0{"sid":"'):].split('"', 1)[0]


def test_a_websocket_session_is_traced_packet_by_packet(server: LiveServer):
    ws = ws_connect(server)
    try:
        opening = ws.recv()
        sid = ws_sid(opening)
        ws.send('4hi')
        assert ws.recv() == '4hi'
        ws.send_binary(b'\x05\x06')
        assert ws.recv() == b'\x05\x06'
        assert wait_for_trace(server, sid, 5) == [
            f'sending OPEN over websocket: {opening[1:]!r}',
            "received MESSAGE over websocket: 'hi'",
            "sending MESSAGE over websocket: 'hi'",
            'received MESSAGE over websocket: <binary, 2 bytes>',
            'sending MESSAGE over websocket: <binary, 2 bytes>',
        ]
    finally:
        ws.close()


def test_the_heartbeat_is_traced():
    env = {**TRACED, 'EIO_PING_INTERVAL': '0.2', 'EIO_PING_TIMEOUT': '5'}
    with start_server('gunicorn-gthread', env=env) as server:
        ws = ws_connect(server)
        try:
            sid = ws_sid(ws.recv())
            assert ws.recv() == '2'
            ws.send('3')
            lines = wait_for_trace(server, sid, 3)
        finally:
            ws.close()
    assert lines[1:] == ['sending PING over websocket', 'received PONG over websocket']


def test_an_upgrade_is_traced_probe_noop_and_upgrade(server: LiveServer):
    client = PollingClient(server)
    client.handshake()
    sid = client.sid
    assert sid
    pending = waiting_get(client)
    ws = ws_connect(server, f'&sid={sid}')
    try:
        ws.send('2probe')
        assert ws.recv() == '3probe'
        # the waiting GET is answered noop, so that the client can switch
        assert decode_payload(pending.result().body) == [Packet('6')]
        ws.send('5')
        wait_for_session(server, sid, transport='websocket')
        ws.send('4after')
        assert ws.recv() == '4after'
        assert wait_for_trace(server, sid, 7)[1:] == [
            "received PING over websocket: 'probe'",
            "sending PONG over websocket: 'probe'",
            'sending NOOP over polling',
            'received UPGRADE over websocket',
            "received MESSAGE over websocket: 'after'",
            "sending MESSAGE over websocket: 'after'",
        ]
    finally:
        ws.close()


def test_without_the_logger_no_packet_is_traced_even_at_debug():
    with start_server('gunicorn-gthread', env={'EIO_LOG_LEVEL': 'DEBUG'}) as server:
        client = PollingClient(server)
        client.handshake()
        client.send('hello')
        assert client.receive(1) == ['hello']
        ws = ws_connect(server)
        try:
            assert ws.recv().startswith('0{')
            ws.send('4hi')
            assert ws.recv() == '4hi'
        finally:
            ws.close()
        client.close()
        assert client.sid
        client.expect_reason('client disconnect')
        log = server.log()
    assert ' DEBUG engineio_wsgi.' in log      # the library's DEBUG lines are on
    assert TRACE not in log
    assert 'MESSAGE over' not in log


def test_without_any_logging_setup_the_trace_is_in_gunicorns_log():
    # no EIO_LOG_LEVEL: the application configures no logging, as most do not
    with start_server('gunicorn-gthread', env={'EIO_LOGGER': '1'}) as server:
        client = PollingClient(server)
        client.handshake()
        client.send('hello')
        assert client.receive(1) == ['hello']
        line = f"[DEBUG] engineio_wsgi: {client.sid} received MESSAGE over polling: 'hello'"
        assert server.wait_for_log(line), server.log_tail()
        client.close()
