"""A backend with a hand-driven clock, for deterministic session tests."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from engineio_wsgi.backends import Backend


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeBackend(Backend):
    """Runs dispatched work inline and never starts the heartbeat loop:
    tests call ``session.heartbeat.step()`` after moving the clock."""

    name = 'fake'

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.monotonic = self.clock  # type: ignore[assignment]
        self.spawned: list[Any] = []

    def spawn(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.spawned.append(fn)
        return None

    def run_soon(self, fn: Any, *args: Any) -> None:
        fn(*args)

    def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def event(self) -> Any:
        return threading.Event()

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return threading.Lock()


class FakeTransport:
    """A transport that delivers only when the test says so, and records what
    the session asked of it: drives a ``Session`` through the transport
    interface alone (engineio_wsgi/transport.py)."""

    def __init__(self, session: Any, name: str = 'websocket', carries_close: bool = True) -> None:
        self.session = session
        self.name = name
        self.carries = carries_close
        self.calls: list[str] = []
        self.written: list[Any] = []
        self.opening: Any = None

    # the interface
    def queued(self) -> bool:
        return True

    def send(self) -> None:
        self.calls.append('send')

    def carries_close(self, reason: Any) -> bool:
        return self.carries

    def writing(self) -> bool:
        return False

    def attached(self, opening: Any) -> None:
        self.calls.append('attached')
        self.opening = opening

    def wake(self) -> None:
        self.calls.append('wake')

    def close(self) -> None:
        self.calls.append('close')

    def abort(self) -> None:
        self.calls.append('abort')

    # what a real transport would do on its own
    def deliver(self) -> list[Any]:
        """Write everything queued; report the close packet's delivery."""
        with self.session.lock:
            packets, last = self.session.take()
        self.written.extend(packets)
        if last:
            self.session.delivered()
        return packets


class FakeConn:
    """The connection a ``WebSocketTransport`` writes to: records the frames."""

    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.calls: list[str] = []
        self.end_reason = None
        self.fail: Exception | None = None
        #: what the transport left for the I/O loop (``call_soon``, ``when_drained``)
        self.on_loop: list[Any] = []

    def send_many(self, frames: list[Any], block: bool = True) -> bool:
        if self.fail is not None:
            raise self.fail
        self.frames.extend(frames)
        return True

    def flush(self) -> None:
        if self.fail is not None:   # a write that a send which never waits left
            raise self.fail

    def frame_encoder(self) -> None:
        return None   # frames as messages, through send_many

    def call_soon(self, callback: Any) -> None:
        self.on_loop.append(callback)

    def when_drained(self, callback: Any) -> None:
        self.on_loop.append(callback)

    def send_frames(self, frames: list[Any], block: bool = True) -> bool:
        raise AssertionError('no frame encoder: send_frames is never called')

    def close(self, *args: Any) -> None:
        self.calls.append('close')

    def abort(self) -> None:
        self.calls.append('abort')
