"""Fixtures for the tests of several server processes: a real redis-server, a
real nginx balancing round robin (no stickiness), and gunicorn instances.

    def test_x(redis_server, nginx_front, gunicorns):
        a, b = gunicorns(2, ['-k', 'gevent'], env={...})
        front = nginx_front([a.port, b.port])
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

from tests.cluster.services import Nginx, RedisServer, temp_dir
from tests.integration.gunicorn_runner import Gunicorn, start_gunicorn


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of its own on a free port; stopped (and its files removed) after."""
    directory = temp_dir('eio-redis-')
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def nginx_front() -> Iterator[Callable[[Sequence[int]], Nginx]]:
    """Starts nginx in front of the given backend ports; stopped after."""
    started: list[tuple[Nginx, str]] = []

    def start(backends: Sequence[int]) -> Nginx:
        directory = temp_dir('eio-nginx-')
        front = Nginx(directory, backends)
        started.append((front, directory))
        front.start()
        return front
    try:
        yield start
    finally:
        for front, directory in started:
            front.stop()
            shutil.rmtree(directory, ignore_errors=True)


GunicornFactory = Callable[..., list[Gunicorn]]


@pytest.fixture
def gunicorns() -> Iterator[GunicornFactory]:
    """``gunicorns(n, worker_args, app=..., env=..., extra=...)``: n gunicorn instances
    (each ``-w 1`` unless ``extra`` says otherwise), killed after."""
    started: list[Gunicorn] = []

    def start(count: int, worker_args: Sequence[str], app: str = 'tests.apps.echo:app',
              env: Mapping[str, str] | None = None, extra: Sequence[str] = ()) -> list[Gunicorn]:
        instances = []
        for _ in range(count):
            instance = start_gunicorn(worker_args, app, env or {}, extra)
            started.append(instance)
            instances.append(instance)
        return instances
    try:
        yield start
    finally:
        for instance in started:
            instance.kill()
