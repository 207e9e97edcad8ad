"""Fixtures for the hostile-input and fault tests.

The live servers come from the integration suite's pool (tests/integration/
conftest.py, configs 'hostile' and 'faults'); each test module runs once per
server kind. Default kinds: gunicorn gevent and gthread; set
``EIO_HOSTILE_KINDS=werkzeug,gunicorn-gevent,...`` for others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.hostile.tools import Bystanders

# the pool, its configs and the failure-report hook are shared with tests/integration
from tests.integration.conftest import (  # noqa: F401 - fixtures and hook re-exported
    ServerPool,
    pytest_runtest_makereport,
    server_pool,
)
from tests.live import LiveServer

KINDS = [k.strip() for k in os.environ.get('EIO_HOSTILE_KINDS', '').split(',') if k.strip()] or [
    'gunicorn-gevent', 'gunicorn-gthread']


@pytest.fixture(scope='module', params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def hostile_server(kind: str, server_pool: ServerPool) -> LiveServer:  # noqa: F811
    """Ping 1 s / 1 s, maxPayload 200,000 bytes, POST body timeout 1 s,
    20,000 packets may be queued per session."""
    return server_pool.get(kind, 'hostile')


@pytest.fixture(scope='module')
def faults_server(kind: str, server_pool: ServerPool) -> LiveServer:  # noqa: F811
    """Ping 0.5 s / 0.5 s, at most 500 packets queued per session."""
    return server_pool.get(kind, 'faults')


@pytest.fixture(scope='module')
def slow_reader_server(kind: str, server_pool: ServerPool) -> LiveServer:  # noqa: F811
    """Ping 2 s / 2 s, at most 500 packets queued per session."""
    return server_pool.get(kind, 'slow-reader')


@pytest.fixture
def bystanders(hostile_server: LiveServer) -> Iterator[Bystanders]:
    """Healthy sessions on ``hostile_server``; the test calls ``check()`` at its end."""
    b = Bystanders(hostile_server)
    yield b
    b.stop()


@pytest.fixture
def fault_bystanders(faults_server: LiveServer) -> Iterator[Bystanders]:
    b = Bystanders(faults_server)
    yield b
    b.stop()
