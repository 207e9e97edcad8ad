"""Fixtures for the integration tests: the echo app in real servers.

Servers are started lazily, once per (kind, configuration), and reused by
every test and module that asks for the same pair; they stop at the end of the
run. ``server`` (normal heartbeat), ``fast_server`` (fast heartbeat) and the
servers with other CORS or transport options are each parametrized over KINDS.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.live import LiveServer, PollingClient, duplicate_disconnects, start_server

# EIO_TEST_KINDS=werkzeug,pywsgi,... runs the same tests on other servers of tests/live.py.
KINDS = [k.strip() for k in os.environ.get('EIO_TEST_KINDS', '').split(',') if k.strip()] or [
    'werkzeug', 'gunicorn-gthread', 'gunicorn-gevent']

# ping interval / timeout in seconds, as strings for the environment
NORMAL = {'EIO_PING_INTERVAL': '1.0', 'EIO_PING_TIMEOUT': '1.0'}
FAST = {'EIO_PING_INTERVAL': '0.3', 'EIO_PING_TIMEOUT': '0.2'}

CONFIGS: dict[str, dict[str, str]] = {
    'normal': NORMAL,
    'fast': FAST,
    'cors-star': {**NORMAL, 'EIO_CORS': '*'},
    'cors-list': {**NORMAL, 'EIO_CORS': 'http://a.example,https://b.example:8443'},
    'cors-off': {**NORMAL, 'EIO_CORS': ''},          # cors_allowed_origins=[]
    'polling-only': {**NORMAL, 'EIO_TRANSPORTS': 'polling'},
    'websocket-only': {**NORMAL, 'EIO_TRANSPORTS': 'websocket'},
    'slow-body': {**NORMAL, 'EIO_HTTP_BODY_TIMEOUT': '0.5'},
    'small-payload': {**NORMAL, 'EIO_MAX_HTTP_BUFFER_SIZE': '1000'},
    'quick-upgrade': {**NORMAL, 'EIO_UPGRADE_TIMEOUT': '0.5'},
    # tests/hostile: bad input (bodies over 200 kB, 10,000 packets queued)
    'hostile': {**NORMAL, 'EIO_HTTP_BODY_TIMEOUT': '1.0', 'EIO_MAX_HTTP_BUFFER_SIZE': '200000',
                'EIO_MAX_QUEUED_PACKETS': '20000'},
    # tests/hostile: faults found by a quick heartbeat, a short outgoing queue
    'faults': {'EIO_PING_INTERVAL': '0.5', 'EIO_PING_TIMEOUT': '0.5',
               'EIO_HTTP_BODY_TIMEOUT': '1.0', 'EIO_MAX_QUEUED_PACKETS': '500'},
    # tests/hostile: a client that stops reading while megabytes are sent to others
    'slow-reader': {'EIO_PING_INTERVAL': '2.0', 'EIO_PING_TIMEOUT': '2.0',
                    'EIO_MAX_QUEUED_PACKETS': '500'},
    # many clients that stop reading (and stay connected) while a few handler
    # threads serve everyone
    'stuck-readers': {'EIO_PING_INTERVAL': '30.0', 'EIO_PING_TIMEOUT': '30.0',
                      'EIO_MAX_QUEUED_PACKETS': '1000', 'EIO_MAX_WORKER_THREADS': '8'},
}

# The server's own log level (library loggers), e.g. EIO_TEST_LOG_LEVEL=DEBUG.
LOG_LEVEL = os.environ.get('EIO_TEST_LOG_LEVEL', 'INFO')
# Keep the servers' log files after the run (their paths are in failure reports).
KEEP_LOGS = bool(os.environ.get('EIO_KEEP_LOGS'))


class ServerPool:
    """Running servers by (kind, config); a dead one is reported, not reused."""

    def __init__(self) -> None:
        self.servers: dict[tuple[str, str], LiveServer] = {}

    def get(self, kind: str, config: str) -> LiveServer:
        key = (kind, config)
        server = self.servers.get(key)
        if server is not None and not server.alive():
            del self.servers[key]
            pytest.fail(f'the {kind} server ({config}) died during an earlier test; '
                        f'its log:\n{server.log_tail(100)}')
        if server is None:
            env = {**CONFIGS[config], 'EIO_LOG_LEVEL': LOG_LEVEL}
            server = start_server(kind, env=env)
            self.servers[key] = server
        return server

    def stop_all(self) -> None:
        """Stop every server; then fail if any ran a session's disconnect
        handler twice during its whole life."""
        twice = {}
        for server in self.servers.values():
            server.stop()
            found = duplicate_disconnects(server) if server.app == 'tests.apps.echo:app' else {}
            if found:
                twice[f'{server.kind} ({server.log_path})'] = found
            elif not KEEP_LOGS:
                with contextlib.suppress(OSError):
                    os.unlink(server.log_path)
        self.servers.clear()
        assert not twice, f'disconnect handler called more than once: {twice}'


@pytest.fixture(scope='session')
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.stop_all()


@pytest.fixture(scope='module', params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def server(kind: str, server_pool: ServerPool) -> LiveServer:
    """The echo app, ping interval 1.0 s and ping timeout 1.0 s."""
    return server_pool.get(kind, 'normal')


@pytest.fixture(scope='module')
def fast_server(kind: str, server_pool: ServerPool) -> LiveServer:
    """The echo app, ping interval 0.3 s and ping timeout 0.2 s."""
    return server_pool.get(kind, 'fast')


@pytest.fixture(scope='module')
def cors_star_server(kind: str, server_pool: ServerPool) -> LiveServer:
    """The echo app with cors_allowed_origins='*'."""
    return server_pool.get(kind, 'cors-star')


@pytest.fixture(scope='module')
def cors_list_server(kind: str, server_pool: ServerPool) -> LiveServer:
    """cors_allowed_origins=['http://a.example', 'https://b.example:8443']."""
    return server_pool.get(kind, 'cors-list')


@pytest.fixture(scope='module')
def cors_off_server(kind: str, server_pool: ServerPool) -> LiveServer:
    """cors_allowed_origins=[]: no origin check, no CORS headers."""
    return server_pool.get(kind, 'cors-off')


@pytest.fixture(scope='module')
def polling_only_server(kind: str, server_pool: ServerPool) -> LiveServer:
    return server_pool.get(kind, 'polling-only')


@pytest.fixture(scope='module')
def websocket_only_server(kind: str, server_pool: ServerPool) -> LiveServer:
    return server_pool.get(kind, 'websocket-only')


@pytest.fixture(scope='module')
def body_timeout_server(kind: str, server_pool: ServerPool) -> LiveServer:
    """A POST body must arrive within 0.5 s."""
    return server_pool.get(kind, 'slow-body')


@pytest.fixture
def client(server: LiveServer) -> Iterator[PollingClient]:
    """A polling client on ``server`` with an open session, closed afterwards."""
    c = PollingClient(server)
    c.handshake()
    yield c
    c.close()


@pytest.fixture
def fast_client(fast_server: LiveServer) -> Iterator[PollingClient]:
    c = PollingClient(fast_server)
    c.handshake()
    yield c
    c.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Attach the tail of each live server's log to a failing test's report."""
    report = yield
    if report.failed:
        funcargs = getattr(item, 'funcargs', {})
        for name, value in funcargs.items():
            if isinstance(value, LiveServer):
                report.sections.append(
                    (f'{value.kind} server log ({name}, {value.log_path})', value.log_tail(80)))
    return report
