"""A server-side ``disconnect(sid)`` whose client leaves as soon as it reads the
disconnect packet: the application's disconnect handler still reads the
session (python-socketio's ``get_session``, Flask-SocketIO's request context).

python-socketio's ``Server.disconnect`` sends ``41`` and only then runs the
disconnect handler; a WebSocket send that fits is on the wire before
``send()`` returns, so the client's close can reach the engine while that
handler runs. A raw WebSocket client closes the connection the moment it
reads ``41``; each kick is checked through the app's ``/disconnects`` route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import websocket  # websocket-client

from tests.live import LiveServer, start_server, wait_until

from .sio_servers import APPS, get_json

KICKS = 300
KINDS = ['gunicorn-gthread', 'gunicorn-gevent']


@pytest.fixture(scope='module', params=[(a, k) for a in APPS for k in KINDS],
                ids=lambda p: f'{p[0]}-{p[1]}')
def kick_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    name, kind = request.param
    with start_server(kind, app=APPS[name]) as server:
        yield server


def kicked_and_gone(server: LiveServer, user: str) -> None:
    """Connect as ``user``, ask to be kicked, close the socket on ``41``."""
    ws = websocket.create_connection(
        f'ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket', timeout=10)
    try:
        assert ws.recv().startswith('0{')
        ws.send('40' + json.dumps({'token': 'secret', 'user': user}))
        assert ws.recv().startswith('40{')
        ws.send('42["kick"]')
        while True:
            frame = ws.recv()
            if frame == '2':
                ws.send('3')
                continue
            assert frame == '41', frame
            break
    finally:
        # at once: no close handshake to wait for, the engine sees the end now
        ws.sock.close()


def test_the_disconnect_handler_reads_the_session_when_the_client_leaves_at_once(kick_server):
    for _ in range(KICKS):
        kicked_and_gone(kick_server, 'kicked')

    def reported() -> list[dict]:
        return get_json(kick_server, '/disconnects?user=kicked')
    # a handler that could not read its session reports nothing (and logs why)
    try:
        wait_until(lambda: len(reported()) >= KICKS, 20, message=f'{KICKS} disconnect handlers')
    except AssertionError:
        raise AssertionError(f'{len(reported())} of {KICKS} disconnect handlers read their '
                             f'session:\n{kick_server.log_tail(40)}') from None
    assert {(d['reason'], d['namespace']) for d in reported()} == {('server disconnect', '/')}
    assert len(reported()) == KICKS
    assert 'Traceback' not in kick_server.log(), kick_server.log_tail(80)
