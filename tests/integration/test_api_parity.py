"""The application API python-socketio relies on, run against python-engineio and
engineio_wsgi alike, with the same real server (werkzeug, threaded, in this
process) and the same real clients; each test asserts one outcome for both.

- ``send_packet(sid, pkt)`` with python-engineio's own ``Packet``, text and binary.
- ``get_queue_empty_exception()``.
- ``get_session`` / ``save_session`` / ``session()`` / ``transport(sid)`` inside the
  ``disconnect`` handler for every reason, and ``KeyError`` once it returned.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import engineio
import engineio.packet
import pytest
import websocket
from werkzeug.serving import make_server

import engineio_wsgi
from tests.live import PollingClient

ENGINES = ('python-engineio', 'engineio_wsgi')


@dataclass
class Engine:
    name: str
    eio: Any
    port: int
    #: what the disconnect handler saw, by sid
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended: dict[str, threading.Event] = field(default_factory=dict)
    connected: queue.Queue[str] = field(default_factory=queue.Queue)

    def wait_ended(self, sid: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.ended.setdefault(sid, threading.Event()).wait(timeout), \
            f'{self.name}: no disconnect for {sid}'
        return self.seen[sid]

    def ws_url(self) -> str:
        return f'ws://127.0.0.1:{self.port}/engine.io/?EIO=4&transport=websocket'


def _server(name: str, **options: Any) -> Any:
    if name == 'python-engineio':
        return engineio.Server(async_mode='threading', **options)
    return engineio_wsgi.Server(async_mode='threading', **options)


def _app(name: str, eio: Any) -> Any:
    if name == 'python-engineio':
        return engineio.WSGIApp(eio)
    return engineio_wsgi.WSGIApp(eio)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    name = request.param
    eio = _server(name, ping_interval=1, ping_timeout=1)
    httpd = make_server('127.0.0.1', 0, _app(name, eio), threaded=True)
    eng = Engine(name, eio, httpd.server_port)

    @eio.on('connect')
    def connect(sid: str, environ: dict[str, Any]) -> None:
        eio.save_session(sid, {'user': 'ada'})
        eng.connected.put(sid)

    @eio.on('disconnect')
    def disconnect(sid: str, reason: str) -> None:
        seen: dict[str, Any] = {'reason': reason}
        try:
            seen['session'] = dict(eio.get_session(sid))
            seen['transport'] = eio.transport(sid)
            with eio.session(sid) as data:
                data['seen'] = True
            eio.save_session(sid, {**eio.get_session(sid), 'saved': True})
            seen['after_save'] = dict(eio.get_session(sid))
        except KeyError as exc:
            seen['error'] = f'KeyError {exc}'
        eng.seen[sid] = seen
        eng.ended.setdefault(sid, threading.Event()).set()

    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield eng
    finally:
        httpd.shutdown()
        thread.join(5)
        eio.shutdown()


def _raises_key_error(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except KeyError:
        return True
    return False


def _assert_readable_then_gone(eng: Engine, sid: str, transport: str) -> None:
    seen = eng.wait_ended(sid)
    assert 'error' not in seen, f'{eng.name}: {seen}'
    assert seen['session'] == {'user': 'ada'}
    assert seen['transport'] == transport
    assert seen['after_save'] == {'user': 'ada', 'seen': True, 'saved': True}
    for call in (lambda: eng.eio.get_session(sid), lambda: eng.eio.transport(sid),
                 lambda: eng.eio.save_session(sid, {})):
        assert _raises_key_error(call), f'{eng.name}: no KeyError after the handler'


def _client_close(client: PollingClient) -> None:
    # python-engineio answers 'OK', engineio_wsgi 'ok' (PROTOCOL.md)
    assert client.post('1').status == 200


def _polling(eng: Engine) -> tuple[PollingClient, str]:
    client = PollingClient(eng.port)
    sid = client.handshake()['sid']
    return client, sid


def _websocket(eng: Engine) -> tuple[websocket.WebSocket, str]:
    ws = websocket.create_connection(eng.ws_url(), timeout=5)
    opened = ws.recv()
    assert opened.startswith('0')
    return ws, eng.connected.get(timeout=5)


# -- the session inside the disconnect handler ------------------------------------


def test_client_close_over_polling(engine: Engine) -> None:
    client, sid = _polling(engine)
    _client_close(client)
    _assert_readable_then_gone(engine, sid, 'polling')


def test_client_close_over_websocket(engine: Engine) -> None:
    ws, sid = _websocket(engine)
    ws.send('1')
    _assert_readable_then_gone(engine, sid, 'websocket')
    ws.close()


def test_transport_close(engine: Engine) -> None:
    ws, sid = _websocket(engine)
    ws.sock.shutdown(socket.SHUT_RDWR)  # the connection drops, no close packet
    ws.sock.close()
    _assert_readable_then_gone(engine, sid, 'websocket')


def test_ping_timeout(engine: Engine) -> None:
    _, sid = _polling(engine)  # never polls again, so never answers a ping
    _assert_readable_then_gone(engine, sid, 'polling')


def test_server_disconnect_over_websocket(engine: Engine) -> None:
    ws, sid = _websocket(engine)
    engine.eio.disconnect(sid)
    _assert_readable_then_gone(engine, sid, 'websocket')
    ws.close()


def test_server_disconnect_over_polling(engine: Engine) -> None:
    _, sid = _polling(engine)
    # python-engineio's disconnect() of a polling client waits for a queue that is
    # never drained (its GET is refused once the session is closed): off this thread
    threading.Thread(target=engine.eio.disconnect, args=(sid,), daemon=True).start()
    _assert_readable_then_gone(engine, sid, 'polling')


def test_parse_error_over_websocket(engine: Engine) -> None:
    ws, sid = _websocket(engine)
    ws.send('9 not a packet type')
    _assert_readable_then_gone(engine, sid, 'websocket')
    ws.close()


def test_client_close_while_a_message_handler_runs(engine: Engine) -> None:
    started, release = threading.Event(), threading.Event()

    @engine.eio.on('message')
    def message(sid: str, data: Any) -> None:
        started.set()
        release.wait(10)

    client, sid = _polling(engine)
    assert client.post('4slow').status == 200
    assert started.wait(5)
    _client_close(client)
    release.set()
    _assert_readable_then_gone(engine, sid, 'polling')


def test_session_context_saves_even_when_its_block_raises(engine: Engine) -> None:
    _, sid = _polling(engine)
    with pytest.raises(RuntimeError), engine.eio.session(sid) as data:
        data['step'] = 1
        engine.eio.save_session(sid, {'overwritten': True})
        raise RuntimeError('in the block')
    # leaving the block saved the context's dict, exception or not
    assert engine.eio.get_session(sid) == {'user': 'ada', 'step': 1}
    engine.eio.save_session(sid, {'replaced': True})
    assert engine.eio.get_session(sid) == {'replaced': True}


def test_unknown_sid_is_key_error(engine: Engine) -> None:
    assert _raises_key_error(lambda: engine.eio.get_session('nope'))
    assert _raises_key_error(lambda: engine.eio.transport('nope'))


# -- send_packet and get_queue_empty_exception ------------------------------------


def _receive_messages(ws: websocket.WebSocket, count: int) -> list[str | bytes]:
    got: list[str | bytes] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        frame = ws.recv()
        if isinstance(frame, bytes):
            got.append(frame)
        elif frame.startswith('4'):
            got.append(frame[1:])
        elif frame == '2':
            ws.send('3')
    return got


def test_send_packet_with_engineio_packets_over_websocket(engine: Engine) -> None:
    ws, sid = _websocket(engine)
    engine.eio.send_packet(sid, engineio.packet.Packet(engineio.packet.MESSAGE, '2["hi",1]'))
    engine.eio.send_packet(sid, engineio.packet.Packet(engineio.packet.MESSAGE, b'\x00\xffbin'))
    assert _receive_messages(ws, 2) == ['2["hi",1]', b'\x00\xffbin']
    ws.close()


def test_send_packet_with_engineio_packets_over_polling(engine: Engine) -> None:
    client, sid = _polling(engine)
    engine.eio.send_packet(sid, engineio.packet.Packet(engineio.packet.MESSAGE, 'text'))
    engine.eio.send_packet(sid, engineio.packet.Packet(engineio.packet.MESSAGE, b'\x01\x02'))
    assert client.receive(2) == ['text', b'\x01\x02']


def test_send_packet_to_an_ended_session_is_ignored(engine: Engine) -> None:
    client, sid = _polling(engine)
    _client_close(client)
    engine.wait_ended(sid)
    other, other_sid = _polling(engine)
    engine.eio.send_packet(sid, engineio.packet.Packet(engineio.packet.MESSAGE, 'late'))
    # the ended session is not brought back, for the application or the client
    assert _raises_key_error(lambda: engine.eio.transport(sid)), engine.name
    assert client.get().status == 400, engine.name
    # and the message went to no other session
    engine.eio.send_packet(other_sid, engineio.packet.Packet(engineio.packet.MESSAGE, 'next'))
    assert other.receive(1) == ['next'], engine.name


def test_queue_empty_exception_matches_create_queue(engine: Engine) -> None:
    q = engine.eio.create_queue()
    with pytest.raises(engine.eio.get_queue_empty_exception()):
        q.get(timeout=0.01)
    assert engine.eio.get_queue_empty_exception() is queue.Empty


def test_send_packet_refuses_engine_packet_types() -> None:
    # deliberate difference: heartbeat, close and upgrade belong to the engine here
    eio = engineio_wsgi.Server(async_mode='threading')
    with pytest.raises(ValueError, match='MESSAGE'):
        eio.send_packet('any', engineio.packet.Packet(engineio.packet.PING))
