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
    tests call ``session.heartbeat_step()`` after moving the clock."""

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
