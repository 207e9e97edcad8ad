"""python-socketio and Flask-SocketIO applications on engineio_wsgi, under
gunicorn's gevent and gthread workers, driven by real Socket.IO clients:
python-socketio's ``Client`` here, socket.io-client 4 in Node and in headless
Chromium (tests/interop/sio_scenarios.js). One server per (application, worker)
serves every scenario; its log must hold no traceback at the end.
"""

from __future__ import annotations

import json
import os
import queue
import socket as socket_module
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.live import ROOT, LiveServer, start_server

from .sio_servers import (
    APPS,
    PARAMS,
    assert_clean_log,
    emit_from_view,
    info,
    param_id,
    wait_disconnects,
)
from .tools import HERE, chromium, node, node_package, run_node_script

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
        self.client.on('question', lambda q: f'{q}!')
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
    want = 'threading' if sio_server.kind in ('werkzeug', 'gunicorn-gthread') else 'gevent'
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
        # the server's own emit with an ack (sio.call), answered by the client
        assert a.call('ask', 'why') == 'why!'
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
        # 300 server emits, all delivered. (Their order is checked with the
        # JS clients: python-engineio's Client hands each message to a thread
        # of its own, so its handlers may run out of order.)
        assert a.call('burst', 300) == 'started'
        assert a.next('seq_done') == 300
        assert sorted(a.next('seq') for _ in range(300)) == list(range(300))
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


# -- socket.io-client 4 in Node and in headless Chromium -------------------------


def _scenario_config(server: LiveServer, prefix: str) -> dict[str, Any]:
    return {'url': server.url, 'modes': list(MODES), 'burst': 300, 'big': BIG,
            'user_prefix': prefix, 'timeout_ms': 20000}


def _check_js_cases(server: LiveServer, cases: list[dict[str, Any]]) -> None:
    assert [c['mode'] for c in cases] == list(MODES)
    for case in cases:
        mode = case['mode']
        assert case['error'] is None, f'{mode}: {case["error"]}\nsteps: {case["steps"]}'
        user, other = case['user'], case['other']
        want = 'polling' if mode == 'polling' else 'websocket'
        assert case['refused'] == {'message': 'bad token', 'data': None}, mode
        assert case['transport'] == want, mode
        assert case['seq_in_order'] and case['seq_count'] == 300, mode
        if mode == 'default':
            # the 300 emits started on polling and finished on the upgraded WebSocket
            assert (case['seq_first_transport'], case['seq_last_transport'],
                    case['upgraded']) == ('polling', 'websocket', 'websocket')
        else:
            assert case['seq_first_transport'] == case['seq_last_transport'] == want
        assert case['echo_text'] == ['héllo ✓', 42]
        assert case['echo_binary'] == {'equal': True, 'label': 'label'}
        assert case['whoami'] == [user]
        assert case['ask'] == ['why!']
        assert case['chat_echo'] == [['chat', 'x']]
        assert case['chat_whoami'] == [user]
        assert case['join'] == ['joined'] and case['to_room'] == ['sent']
        assert case['room_member_got'] == 'for members'
        assert case['room_other_got'] == []
        assert case['view_answer'] == 'sent'
        assert case['view_member_got'] == 'from a plain view'
        assert case['all_a'] == case['all_b'] == f'all {user}'
        assert case['bg'] == ['started'] and case['bg_got'] == {'k': [1, 2]}
        assert case['big_text_equal'] and case['big_binary_equal']
        assert case['kick_reason'] == 'io server disconnect'
        # the disconnect handlers read each namespace's session
        assert case['disconnects'] == {
            'user': [{'user': user, 'reason': 'client disconnect', 'namespace': '/'},
                     {'user': user, 'reason': 'client disconnect', 'namespace': '/chat'}],
            'other': [{'user': other, 'reason': 'client disconnect', 'namespace': '/'}],
            'kicked': [{'user': case['kicked_user'], 'reason': 'server disconnect',
                        'namespace': '/'}],
        }, mode


def test_node_client(sio_server: LiveServer) -> None:
    node_package('socket.io-client')
    report = run_node_script('sio_client.mjs', _scenario_config(sio_server, 'node'), timeout=120)
    _check_js_cases(sio_server, report['cases'])


def test_browser_client(sio_server: LiveServer, tmp_path: Path) -> None:
    client = os.path.join(node_package('socket.io-client'), 'dist', 'socket.io.min.js')
    config = {**_scenario_config(sio_server, 'chromium'), 'chromium': chromium(),
              'user_data_dir': str(tmp_path / 'profile'), 'client_js': client}
    report = run_node_script('sio_browser.mjs', config, timeout=150)
    assert report['error'] is None, report['error']
    assert report['page_errors'] == []
    _check_js_cases(sio_server, report['cases'])


def test_no_traceback_in_server_log(sio_server: LiveServer) -> None:
    assert_clean_log(sio_server)


# -- reconnection after a server restart ------------------------------------------


def _free_port() -> int:
    with socket_module.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize('param', PARAMS, ids=param_id)
def test_clients_reconnect_after_a_server_restart(param: tuple[str, str], tmp_path: Path) -> None:
    """socket.io-client in Node and in Chromium, and python-socketio's Client,
    all with reconnection on, come back by themselves once the server is up again."""
    name, kind = param
    client_js = os.path.join(node_package('socket.io-client'), 'dist', 'socket.io.min.js')
    port = _free_port()
    server = start_server(kind, app=APPS[name], port=port)
    procs = {
        'node': _start_js(tmp_path, 'sio_client.mjs', {
            'url': server.url, 'restart': True, 'user': 'node-restart', 'timeout_ms': 30000}),
        'chromium': _start_js(tmp_path, 'sio_browser.mjs', {
            'url': server.url, 'restart': True, 'user': 'chromium-restart', 'timeout_ms': 30000,
            'chromium': chromium(), 'user_data_dir': str(tmp_path / 'profile'),
            'client_js': client_js}),
    }
    py = socketio.Client(reconnection=True, reconnection_delay=0.1, reconnection_delay_max=0.5)
    py_connects: queue.Queue[str] = queue.Queue()
    py.on('connect', lambda: py_connects.put(py.get_sid()))
    try:
        first = {who: _node_line(proc) for who, proc in procs.items()}
        for who, line in first.items():
            assert line['event'] == 'connected', (who, line)
        py.connect(server.url, auth={'token': 'secret', 'user': 'py-restart'}, wait_timeout=10)
        py_first = py_connects.get(timeout=10)
        assert_clean_log(server)
        server.stop()
        server = start_server(kind, app=APPS[name], port=port)
        for who, proc in procs.items():
            again = _node_line(proc)
            assert again['event'] == 'reconnected', (who, again)
            assert again['sid'] != first[who]['sid'] and again['echo'] == ['after restart']
            assert again['reasons'] == ['transport close'], who
        py_again = py_connects.get(timeout=20)
        assert py_again != py_first
        assert py.call('echo', 'py after restart', timeout=10) == 'py after restart'
        assert_clean_log(server)
    finally:
        py.disconnect()
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
        server.stop()


def _start_js(tmp_path: Path, script: str, config: dict[str, Any]) -> subprocess.Popen[str]:
    path = tmp_path / f'{script}.json'
    path.write_text(json.dumps(config), encoding='utf-8')
    return subprocess.Popen([node(), os.path.join(HERE, script), str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def _node_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, Any]:
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True)
    reader.start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f'no line from the Node client within {timeout} s')
    if not line:
        pytest.fail(f'the Node client exited: {proc.stderr.read() if proc.stderr else ""}')
    return json.loads(line)  # type: ignore[no-any-return]
