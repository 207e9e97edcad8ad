"""permessage-deflate: off by default, negotiated where the option is on and the
server lets the application answer the handshake (not gevent-websocket, whose
handler writes the 101 itself)."""

from __future__ import annotations

import pytest
from websockets.sync.client import connect

from tests.live import KINDS

GWS = ('pywsgi-gws', 'gunicorn-gws')


@pytest.fixture(scope='module', params=KINDS)
def kind(request):
    return request.param


def extensions_and_echo(port: int, text: str) -> tuple[list[str], str]:
    url = f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket'
    with connect(url, compression='deflate', open_timeout=5) as ws:
        assert ws.recv(timeout=5).startswith('0')
        ws.send('4' + text)
        echoed = ws.recv(timeout=5)
        names = [ext.name for ext in ws.protocol.extensions]
    return names, echoed


def test_off_by_default(kind, server_pool):
    server = server_pool.get(kind, 'normal')
    names, echoed = extensions_and_echo(server.port, 'plain')
    assert names == []
    assert echoed == '4plain'


def test_negotiated_when_turned_on(kind):
    from tests.live import start_server
    with start_server(kind, app='tests.apps.deflate_echo:app') as server:
        text = 'compressible ' * 5000
        names, echoed = extensions_and_echo(server.port, text)
    assert echoed == '4' + text
    if kind in GWS:
        assert names == []   # the 101 was written before the application ran
    else:
        assert names == ['permessage-deflate']
