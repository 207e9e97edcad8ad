"""Fixtures for the interop tests: real clients against the echo app in real servers.

The servers come from the integration tests' pool (tests/integration/conftest.py):
``interop_server`` has a 1 s ping interval and timeout, ``interop_fast_server``
0.3 s and 0.2 s (for the idle tests). Both are parametrized over KINDS, by
default gunicorn's gevent and gthread workers (EIO_INTEROP_KINDS=werkzeug,...
picks others from tests/live.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.conftest import (
    ServerPool,
    pytest_runtest_makereport,  # noqa: F401 (server logs on failures)
)
from tests.live import LiveServer

KINDS = [k.strip() for k in os.environ.get('EIO_INTEROP_KINDS', '').split(',') if k.strip()] or [
    'gunicorn-gevent', 'gunicorn-gthread']


@pytest.fixture(scope='session')
def interop_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.stop_all()


@pytest.fixture(scope='module', params=KINDS)
def interop_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def interop_server(interop_kind: str, interop_pool: ServerPool) -> LiveServer:
    """The echo app, ping interval 1.0 s and ping timeout 1.0 s."""
    return interop_pool.get(interop_kind, 'normal')


@pytest.fixture(scope='module')
def interop_fast_server(interop_kind: str, interop_pool: ServerPool) -> LiveServer:
    """The echo app, ping interval 0.3 s and ping timeout 0.2 s."""
    return interop_pool.get(interop_kind, 'fast')
