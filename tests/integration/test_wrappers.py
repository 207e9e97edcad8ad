"""The end of a WebSocket does not look like an application error to the
usual WSGI wrappers (tests/apps/wrapped.py: a recording error reporter and
werkzeug's debugger), on every stack."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import websocket  # websocket-client

from tests.live import KINDS, LiveServer, PollingClient, start_server, wait_until

BAD = re.compile(r'WRAPPER saw|Traceback|Debugging middleware| 500 |Error on request|'
                 r'Error handling request|Exception')


@pytest.fixture(scope='module', params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    env = {'EIO_PING_INTERVAL': '1', 'EIO_PING_TIMEOUT': '1', 'EIO_LOG_LEVEL': 'INFO'}
    with start_server(request.param, 'tests.apps.wrapped:app', env=env) as live:
        yield live


def disconnected(server: LiveServer, sid: str) -> bool:
    return f'echo: disconnect {sid} ' in server.log()


def sid_of(open_packet: str) -> str:
    return open_packet.split('"sid":"')[1].split('"')[0]


def test_websocket_sessions_end_without_an_application_error(server: LiveServer):
    mark = len(server.log())
    # the client closes
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket', timeout=10)
    first = sid_of(ws.recv())
    ws.send('4hello')
    assert ws.recv() == '4hello'
    ws.close()
    # the server closes
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket', timeout=10)
    second = sid_of(ws.recv())
    ws.send('4__disconnect')
    assert ws.recv() == '1'
    ws.close()
    # an upgraded polling session, closed by the client
    polling = PollingClient(server)
    third = polling.handshake()['sid']
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{server.port}/engine.io/?EIO=4&transport=websocket&sid={third}',
        timeout=10)
    ws.send('2probe')
    assert ws.recv() == '3probe'
    ws.send('5')
    ws.send('4up')
    assert ws.recv() == '4up'
    ws.close()
    for sid in (first, second, third):
        wait_until(lambda sid=sid: disconnected(server, sid), timeout=10,
                   message=f'{sid} ended')
    # the server has let go of every connection (a plain request still answers)
    PollingClient(server).handshake()
    log = server.log()[mark:]
    assert not BAD.search(log), log
