"""python-socketio and Flask-SocketIO applications on engineio_wsgi, under
gunicorn's gevent and gthread workers, driven by real Socket.IO clients:
python-socketio's ``Client`` here, socket.io-client 4 in Node and in headless
Chromium (tests/interop/sio_scenarios.js). One server per (application, worker)
serves every scenario; its log must hold no traceback at the end.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import socketio

from tests.live import LiveServer, start_server

from .sio_servers import (
    APPS,
    PARAMS,
    assert_clean_log,
    emit_from_view,
    info,
    param_id,
    wait_disconnects,
)

pytestmark = pytest.mark.interop

MODES = {'default': None, 'websocket': ['websocket'], 'polling': ['polling']}
BIG = 500_000


@pytest.fixture(scope='module', params=PARAMS, ids=param_id)
def sio_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    name, kind = request.param
    with start_server(kind, app=APPS[name]) as server:
        yield server


class PyClient:
    """python-socketio's Client, with what the server pushed collected per event."""

    EVENTS = ('seq', 'seq_done', 'room_msg', 'all_msg', 'bg_msg')

    def __init__(self, server: LiveServer, mode: str, user: str,
                 namespaces: tuple[str, ...] = ('/', '/chat')) -> None:
        self.user = user
        self.client = socketio.Client(reconnection=False)
        self.got: dict[str, queue.Queue[Any]] = {e: queue.Queue() for e in self.EVENTS}
        self.disconnected = threading.Event()
        self.disconnect_reason: str | None = None
        for event in self.EVENTS:
            self.client.on(event, self._collector(event))
        self.client.on('disconnect', self._on_disconnect)
        self.client.connect(server.url, transports=MODES[mode],
                            auth={'token': 'secret', 'user': user},
                            namespaces=list(namespaces), wait_timeout=10)

    def _collector(self, event: str) -> Any:
        return lambda *args: self.got[event].put(args[0] if len(args) == 1 else args)

    def _on_disconnect(self, reason: str | None = None) -> None:
        self.disconnect_reason = reason
        self.disconnected.set()

    def call(self, event: str, *args: Any, namespace: str | None = None) -> Any:
        return self.client.call(event, data=_data(args), namespace=namespace, timeout=15)

    def next(self, event: str, timeout: float = 10.0) -> Any:
        return self.got[event].get(timeout=timeout)

    def pending(self, event: str) -> list[Any]:
        items = []
        while not self.got[event].empty():
            items.append(self.got[event].get_nowait())
        return items

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


def _data(args: tuple[Any, ...]) -> Any:
    # python-socketio sends a tuple as several arguments
    if not args:
        return None
    return args if len(args) > 1 else args[0]


def _user(prefix: str) -> str:
    return f'{prefix}-{uuid.uuid4().hex[:8]}'


def _wait_transport(client: PyClient, want: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while client.client.transport() != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return str(client.client.transport())


def test_engine_is_engineio_wsgi(sio_server: LiveServer) -> None:
    got = info(sio_server)
    assert got['engine'] == 'engineio_wsgi.server'
    want = 'gevent' if sio_server.kind == 'gunicorn-gevent' else 'threading'
    assert got['async_mode'] == want


@pytest.mark.parametrize('mode', MODES)
def test_python_client(sio_server: LiveServer, mode: str) -> None:
    user = _user(mode)
    a = PyClient(sio_server, mode, user)
    b = PyClient(sio_server, mode, _user('other'))
    try:
        want = 'polling' if mode == 'polling' else 'websocket'
        assert _wait_transport(a, want) == want
        # acks, text and binary
        assert a.call('echo', 'héllo ✓', 42) == ('héllo ✓', 42)
        blob = bytes(range(256)) * 4
        assert a.call('echo', blob, 'label') == (blob, 'label')
        assert a.call('whoami') == user
        # namespaces, each with its own session
        assert a.call('echo', 'x', namespace='/chat') == ['chat', 'x']
        assert a.call('whoami', namespace='/chat') == user
        # rooms: members receive, others do not
        room = f'room-{user}'
        assert a.call('join', room) == 'joined'
        assert b.call('to_room', room, 'for members') == 'sent'
        assert a.next('room_msg') == 'for members'
        # b's ack came after anything the room emit could have queued for b
        assert b.pending('room_msg') == []
        emit_from_view(sio_server, room, 'from a plain view')
        assert a.next('room_msg') == 'from a plain view'
        # everyone, and from a background task
        assert a.call('to_all', f'all {user}') == 'sent'
        assert f'all {user}' in _drain_until(a, 'all_msg', f'all {user}')
        assert f'all {user}' in _drain_until(b, 'all_msg', f'all {user}')
        assert a.call('bg', {'k': [1, 2]}) == 'started'
        assert a.next('bg_msg') == {'k': [1, 2]}
        # 300 server emits, in order
        assert a.call('burst', 300) == 'started'
        assert a.next('seq_done') == 300
        assert a.pending('seq') == list(range(300))
        # a 500 kB message both ways
        big = 'y' * BIG
        assert a.call('echo', big) == big
        big_bin = b'\x07' * BIG
        assert a.call('echo', big_bin) == big_bin
    finally:
        a.close()
        b.close()
    # the disconnect handlers read the session of each namespace. (The reason is
    # not compared: python-socketio's Client.disconnect() closes its WebSocket
    # without waiting for its DISCONNECT packets to be written, so the server
    # sees a client disconnect or a transport close, as the client's race goes.)
    found = wait_disconnects(sio_server, user, 2)
    assert [(d['user'], d['namespace']) for d in found] == [(user, '/'), (user, '/chat')]


def _drain_until(client: PyClient, event: str, want: Any) -> list[Any]:
    seen = []
    while want not in seen:
        seen.append(client.next(event))
    return seen


@pytest.mark.parametrize('mode', MODES)
def test_python_client_auth_refused(sio_server: LiveServer, mode: str) -> None:
    client = socketio.Client(reconnection=False)
    errors: list[Any] = []
    client.on('connect_error', errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(sio_server.url, transports=MODES[mode],
                       auth={'token': 'wrong', 'user': 'x'}, wait_timeout=10)
    assert errors == [{'message': 'bad token'}]
    assert not client.connected


@pytest.mark.parametrize('mode', MODES)
def test_python_client_server_disconnect(sio_server: LiveServer, mode: str) -> None:
    user = _user(f'kick-{mode}')
    client = PyClient(sio_server, mode, user, namespaces=('/',))
    try:
        client.client.emit('kick')
        assert client.disconnected.wait(10)
        assert client.disconnect_reason == client.client.reason.SERVER_DISCONNECT
    finally:
        client.close()
    assert wait_disconnects(sio_server, user, 1) == [
        {'user': user, 'reason': 'server disconnect', 'namespace': '/'}]


def test_no_traceback_in_server_log(sio_server: LiveServer) -> None:
    assert_clean_log(sio_server)
