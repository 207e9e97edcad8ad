"""python-engineio's ``Client`` against the echo app: polling, WebSocket, and
polling then the upgrade.

That client JSON-decodes incoming text that parses as JSON, except numbers
(and it decodes the open packet with the same code, so this cannot be turned
off): the tests compare what it returns with ``as_received(sent)``, and check in
the echo app's log that the server got, and so sent back, the text itself.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import engineio  # type: ignore[import-untyped]
import pytest

from tests.live import LiveServer, disconnect_reasons, wait_until

from .test_node_client import BATCH, BINARIES, TEXTS

pytestmark = pytest.mark.interop

MODES = {
    'polling': ['polling'],
    'websocket': ['websocket'],
    'default': ['polling', 'websocket'],
}


def as_received(sent: Any) -> Any:
    """What python-engineio's Client hands to its message handler for ``sent`` echoed."""
    if not isinstance(sent, str):
        return sent
    try:
        decoded = json.loads(sent)
    except ValueError:
        return sent
    if isinstance(decoded, (int, float)) and not isinstance(decoded, bool):
        return sent         # numbers stay text
    return decoded


class EchoClient:
    """An ``engineio.Client`` that collects what it receives."""

    def __init__(self, server: LiveServer, transports: list[str]) -> None:
        self.server = server
        self.client = engineio.Client(handle_sigint=False, request_timeout=10)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.disconnected = threading.Event()
        self.disconnect_reason: Any = None
        self.client.on('message', self.messages.put)
        self.client.on('disconnect', self._on_disconnect)
        self.client.connect(server.url, transports=transports)
        self.sid: str = self.client.sid

    def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnect_reason = reason
        self.disconnected.set()

    def send(self, *messages: Any) -> None:
        for message in messages:
            self.client.send(message)

    def receive(self, count: int, timeout: float = 10.0) -> list[Any]:
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f'received {len(got)} of {count} messages in {timeout} s: '
                                     f'{got!r:.500}') from None
        return got

    def echo(self, *messages: Any) -> list[Any]:
        self.send(*messages)
        return self.receive(len(messages))

    def server_got(self, text: str) -> bool:
        """The echo app logged ``text`` (repr, up to 80 characters) for this session."""
        short = text if len(text) <= 80 else text[:80] + '...'
        return f'echo: message {self.sid} {short!r}' in self.server.log()

    def server_reasons(self) -> list[str]:
        return disconnect_reasons(self.server, self.sid)

    def expect_server_reason(self, reason: str) -> None:
        wait_until(self.server_reasons, timeout=5,
                   message=f'the disconnect handler to run for {self.sid}')
        assert self.server_reasons() == [reason]

    def close(self) -> None:
        if self.client.state == 'connected':
            self.client.disconnect()


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(interop_server: LiveServer, mode: str) -> Iterator[EchoClient]:
    c = EchoClient(interop_server, MODES[mode])
    yield c
    c.close()


def check_transport(c: EchoClient, mode: str) -> None:
    want = 'polling' if mode == 'polling' else 'websocket'
    assert c.client.transport() == want


def test_version() -> None:
    from importlib.metadata import version
    major, minor, patch = (int(x) for x in version('python-engineio').split('.')[:3])
    # 4.2.1 and later post text/plain, as the server requires
    assert (major, minor, patch) >= (4, 2, 1)


def test_connect_and_transport(client: EchoClient, mode: str) -> None:
    """The default mode has upgraded by the time connect() returns."""
    check_transport(client, mode)
    assert client.client.upgrades == ([] if mode == 'websocket' else ['websocket'])
    assert client.client.ping_interval == 1.0


def test_text(client: EchoClient, mode: str) -> None:
    """Text, JSON-looking text included, reaches the server verbatim and comes back."""
    assert client.echo(*TEXTS) == [as_received(t) for t in TEXTS]
    for sent in TEXTS:
        assert client.server_got(sent), f'the server did not log {sent!r} verbatim'
    check_transport(client, mode)


def test_binary(client: EchoClient, mode: str) -> None:
    got = client.echo(BINARIES[0], 'between', *BINARIES[1:])
    assert got == [BINARIES[0], 'between', *BINARIES[1:]]
    assert [type(m) for m in got] == [bytes, str] + [bytes] * (len(BINARIES) - 1)


def test_many_messages(client: EchoClient) -> None:
    assert client.echo(*BATCH) == BATCH


def test_many_messages_from_server(client: EchoClient) -> None:
    """20 messages queued at once by the server: the client takes no more than 16 per poll."""
    client.send('__send 20')
    assert client.receive(20) == [f'm{i}' for i in range(20)]


def test_large_text(client: EchoClient) -> None:
    sent = ('abcdefghij€🎉\n' * (500_000 // 18))
    [got] = client.echo(sent)
    assert isinstance(got, str) and len(got) == len(sent)
    assert hashlib.sha256(got.encode()).digest() == hashlib.sha256(sent.encode()).digest()


def test_large_binary(client: EchoClient) -> None:
    sent = bytes(range(256)) * (500_000 // 256)
    [got] = client.echo(sent)
    assert got == sent


def test_idle(interop_fast_server: LiveServer, mode: str) -> None:
    """Idle for 5 ping intervals (0.3 s, timeout 0.2 s): still connected, still echoing."""
    c = EchoClient(interop_fast_server, MODES[mode])
    try:
        assert c.client.ping_interval == pytest.approx(0.3)
        assert not c.disconnected.wait(1.5), f'dropped while idle: {c.disconnect_reason}'
        assert c.client.state == 'connected'
        assert c.server_reasons() == []
        assert c.echo('after the idle time') == ['after the idle time']
        check_transport(c, mode)
    finally:
        c.close()


def test_server_close(client: EchoClient) -> None:
    client.send('__disconnect')
    assert client.disconnected.wait(5), 'the client did not see the server close'
    assert client.disconnect_reason == engineio.Client.reason.SERVER_DISCONNECT
    client.expect_server_reason('server disconnect')


def test_client_close(client: EchoClient, mode: str) -> None:
    """disconnect() ends the session on the server at once, not at a ping timeout."""
    assert client.echo('bye') == ['bye']
    # The client's write loop stops without sending the close packet if
    # disconnect() comes while it is still busy with the previous POST: let it
    # finish first (python-engineio's own race, not the server's).
    client.client.queue.join()
    client.client.disconnect()
    assert client.disconnect_reason == engineio.Client.reason.CLIENT_DISCONNECT
    wait_until(client.server_reasons, timeout=1.5,
               message=f'the disconnect handler to run for {client.sid}')
    # On WebSocket the client sends its close packet and closes the socket at
    # once: whichever the server sees first ends the session.
    allowed = ['client disconnect'] + (['transport close'] if mode != 'polling' else [])
    assert client.server_reasons()[0] in allowed
    assert len(client.server_reasons()) == 1
