"""What an idle WebSocket session keeps in memory, object by object.

Thousands of sessions sit idle on one worker, so what each keeps at rest is
what the worker's memory grows by: the objects made per session have fixed
fields (``__slots__``, no per-instance ``__dict__``), and a queue with
nothing in it holds no buffer (an empty ``collections.deque`` keeps a block
of 64 slots, 760 bytes). The session here is real from end to end: a
``Session`` on the threading backend, its WebSocket transport over a
``WSConnection`` that completed its handshake on a socket pair, read by its
own thread as a server's request thread does; the test is the client.
"""

from __future__ import annotations

import gc
import socket
import threading
import types
from collections import deque
from typing import Any

import pytest
import webtest

from engineio_wsgi import Server, WSGIApp
from engineio_wsgi.backends import ThreadingBackend
from engineio_wsgi.options import Options
from engineio_wsgi.packets import Packet, PacketType
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.request import Request
from engineio_wsgi.session import Session
from engineio_wsgi.transport import Unconnected
from engineio_wsgi.websocket_transport import WebSocketTransport, accept
from tests.live import wait_until
from tests.unit.test_rfc6455_wire import handshake_environ
from tests.unit.wsframes import TEXT, FrameReader, client_key, encode

pytestmark = pytest.mark.timeout(30)


def fields(obj: Any) -> list[Any]:
    """What ``obj`` refers to: its slots, or the values of its ``__dict__``."""
    out = []
    for ref in gc.get_referents(obj):
        if isinstance(ref, dict) and ref is getattr(obj, '__dict__', None):
            out.extend(ref.values())
        elif not isinstance(ref, type):
            out.append(ref)
    return out


def assert_lean(obj: Any) -> None:
    name = type(obj).__name__
    assert not hasattr(obj, '__dict__'), f'{name} has a __dict__'
    held = [type(ref).__name__ for ref in fields(obj) if isinstance(ref, deque)]
    assert not held, f'{name} holds {held} while idle'


class WebSocketSession:
    """A session that started on WebSocket, with an echo application."""

    def __init__(self) -> None:
        server_sock, self.client = socket.socketpair()
        self.backend = ThreadingBackend()
        options = Options.from_kwargs(ping_interval=60.0, ping_timeout=60.0)
        self.session = Session('sid1', lambda session: Unconnected(), self.backend, options,
                               on_message=lambda session, data: session.enqueue(
                                   Packet(PacketType.MESSAGE, data)),
                               on_close=lambda session, reason: None,
                               on_finished=lambda session: None)
        self.session.set_open_packet('{"sid":"sid1"}')
        self.reader = FrameReader(self.client)
        request = Request(handshake_environ(server_sock, client_key()))
        self.conn = accept(options, self.backend.name, request)
        assert self.reader.response_head().startswith(b'HTTP/1.1 101')
        self.transport = WebSocketTransport(self.session, self.conn, False)
        assert self.session.switch(self.transport)
        self.serving = threading.Thread(target=self.transport.serve, daemon=True)
        self.serving.start()

    def text(self) -> str:
        frame = self.reader.frame()
        assert frame is not None and frame.opcode == TEXT
        return frame.payload.decode()

    def send(self, text: str) -> None:
        self.client.sendall(encode(TEXT, text.encode(), ))

    def wait_idle(self) -> None:
        session = self.session

        def idle() -> bool:
            with session.lock:
                return not session.dispatcher.running and not self.transport.writing()
        wait_until(idle, 5, interval=0.001, message='the session idle')

    def objects(self) -> list[Any]:
        return [self.session, self.session.dispatcher, self.transport, self.conn,
                self.conn._rt]

    def end(self) -> None:
        self.session.end()
        self.client.close()
        self.serving.join(5)
        assert not self.serving.is_alive()


@pytest.fixture
def ws() -> Any:
    pair = WebSocketSession()
    yield pair
    pair.end()


def test_an_idle_websocket_session_has_no_instance_dicts_and_no_queue_buffers(ws) -> None:
    assert ws.text() == '0{"sid":"sid1"}'
    ws.wait_idle()
    for obj in ws.objects():
        assert_lean(obj)


def test_queues_give_their_buffers_back_once_drained(ws) -> None:
    assert ws.text() == '0{"sid":"sid1"}'
    for n in range(50):
        ws.send(f'4message {n}')
    assert [ws.text() for _ in range(50)] == [f'4message {n}' for n in range(50)]
    ws.wait_idle()
    for obj in ws.objects():
        assert_lean(obj)


def test_an_idle_polling_session_keeps_no_instance_dicts_and_no_queue_buffers() -> None:
    """Also what an upgraded session keeps of its polling transport."""
    options = Options.from_kwargs(ping_interval=60.0, ping_timeout=60.0)
    session = Session('sid2', PollingTransport, ThreadingBackend(), options,
                      on_message=lambda session, data: None,
                      on_close=lambda session, reason: None, on_finished=lambda session: None)
    session.set_open_packet('{"sid":"sid2"}')
    try:
        assert session.polling is not None
        assert session.polling.poll() == [Packet(PacketType.OPEN, '{"sid":"sid2"}')]
        for obj in (session, session.dispatcher, session.polling):
            assert_lean(obj)
    finally:
        session.end()


def test_the_sessions_of_a_server_share_its_callbacks() -> None:
    """A bound method made per session (``handlers.message`` read again for
    each) is 80 bytes each time; the sessions of one server share them."""
    eio = Server(async_mode='threading', shutdown_timeout=0.05)
    eio.on('message', lambda sid, data: None)
    app = webtest.TestApp(WSGIApp(eio))
    try:
        for _ in range(2):
            assert app.get('/engine.io/?EIO=4&transport=polling').body[:1] == b'0'
        first, second = list(eio._sessions)

        def methods(session: Session) -> set[int]:
            return {id(ref) for obj in (session, session.dispatcher) for ref in fields(obj)
                    if isinstance(ref, types.MethodType)}
        assert methods(first)
        assert methods(first) == methods(second)
    finally:
        eio.shutdown()
