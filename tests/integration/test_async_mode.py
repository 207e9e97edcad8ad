"""async_mode=None is decided once, at the first request, by one detector,
also when the application starts a background task at import time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live import (
    LiveServer,
    PollingClient,
    http_request,
    start_server,
)

APP = 'tests.apps.early_task:app'


EXPECTED = {
    'pywsgi-nopatch': {'async_mode': 'gevent', 'task': 'greenlet'},
    'gunicorn-gevent': {'async_mode': 'gevent', 'task': 'greenlet'},
    'werkzeug': {'async_mode': 'threading', 'task': 'thread'},
    'gunicorn-gthread': {'async_mode': 'threading', 'task': 'thread'},
}


@pytest.fixture(params=sorted(EXPECTED))
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    kind = request.param
    live = start_server(kind, APP)
    try:
        yield live
    finally:
        live.stop()


@pytest.mark.timeout(60)
def test_a_task_started_at_import_runs_in_the_mode_the_first_request_decides(server):
    client = PollingClient(server)
    client.handshake()
    # a long-poll waits while the client posts: the server serves both at once
    waiting = PollingClient(server)
    waiting.handshake()
    client.send('hello')
    assert client.receive(1, timeout=5) == ['hello']
    resp = http_request(server.port, 'GET', '/__mode', timeout=10)
    assert resp.status == 200, resp
    assert resp.json() == EXPECTED[server.kind]
    client.close()
    waiting.close()
    assert 'Traceback' not in server.log()
