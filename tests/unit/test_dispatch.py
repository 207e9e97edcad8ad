"""The dispatcher on the real threading backend: the end of a session reaches
the application on the pool, after the messages received before it, once;
a server disconnect at the call."""

from __future__ import annotations

import threading
from typing import Any

from engineio_wsgi.backends import ThreadingBackend
from engineio_wsgi.options import Options
from engineio_wsgi.packets import Packet, PacketType
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.reasons import Reason
from engineio_wsgi.session import Session, State
from tests.live import wait_until

MSG = PacketType.MESSAGE


class Application:
    """Handlers that record what they were called with, and where; each
    waits at ``gate`` (open unless a test closes it)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.threads: dict[str, int] = {}
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def on_message(self, session: Session, data: str | bytes) -> None:
        self.entered.set()
        self.gate.wait(10)
        self.events.append(('message', data))

    def on_close(self, session: Session, reason: str) -> None:
        self.threads['close'] = threading.get_ident()
        self.entered.set()
        self.gate.wait(10)
        self.events.append(('close', reason))


def make(app: Application, **options: Any) -> Session:
    session = Session('sid1', PollingTransport, ThreadingBackend(max_workers=2),
                      Options.from_kwargs(ping_interval=25, ping_timeout=20, **options),
                      on_message=app.on_message, on_close=app.on_close,
                      on_finished=lambda s: None)
    session.set_open_packet('{}')
    session.start()
    with session.lock:
        session.outbox.clear()   # the open packet, as a handshake takes it
    return session


def test_an_end_is_reported_on_a_worker_after_the_caller_returned() -> None:
    app = Application()
    app.gate.clear()
    session = make(app)
    assert session.close(Reason.TRANSPORT_CLOSE, farewell=False)
    # the caller (here: a WebSocket's reader) is back while the handler waits
    assert session.state is State.FINISHED
    assert app.entered.wait(5)
    assert app.events == []
    assert app.threads['close'] != threading.get_ident()
    app.gate.set()
    wait_until(lambda: app.events, timeout=5, message='the end reported')
    assert app.events == [('close', Reason.TRANSPORT_CLOSE)]


def test_a_send_that_finds_the_queue_full_returns_before_the_disconnect_handler() -> None:
    app = Application()
    app.gate.clear()
    session = make(app, max_queued_packets=3)
    for i in range(3):
        assert session.enqueue(Packet(MSG, str(i)))
    assert not session.enqueue(Packet(MSG, 'one too many'))
    assert app.entered.wait(5)
    assert app.events == []                  # still waiting: not inside enqueue
    assert app.threads['close'] != threading.get_ident()
    app.gate.set()
    wait_until(lambda: app.events, timeout=5, message='the end reported')
    assert app.events == [('close', Reason.SEND_BUFFER_FULL)]


def test_a_server_disconnect_is_reported_at_the_call_on_the_callers_thread() -> None:
    app = Application()
    session = make(app)
    assert session.close(Reason.SERVER_DISCONNECT)
    assert app.events == [('close', Reason.SERVER_DISCONNECT)]
    assert app.threads['close'] == threading.get_ident()


def test_the_end_comes_after_the_messages_received_before_it_and_only_once() -> None:
    app = Application()
    app.gate.clear()
    session = make(app)
    session.receive(Packet(MSG, 'a'))
    assert app.entered.wait(5)               # 'a' is being handled
    session.receive(Packet(MSG, 'b'))
    session.receive(Packet(PacketType.CLOSE))
    session.receive(Packet(MSG, 'after the end'))
    assert not session.close(Reason.TRANSPORT_CLOSE)
    app.gate.set()
    wait_until(lambda: len(app.events) == 3, timeout=5, message='everything handled')
    assert app.events == [('message', 'a'), ('message', 'b'),
                          ('close', Reason.CLIENT_DISCONNECT)]
    # the worker leaves with nothing more to report
    wait_until(lambda: not session.dispatcher.running, timeout=5, message='the worker gone')
    assert len(app.events) == 3
