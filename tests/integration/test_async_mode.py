"""async_mode=None is decided once, at the first request, by one detector,
also when the application starts a background task at import time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.live import (
    ROOT,
    LiveServer,
    PollingClient,
    ServerStartError,
    _child_env,
    http_request,
    start_server,
)

APP = 'tests.apps.early_task:app'


def start_nopatch() -> LiveServer:
    """gevent.pywsgi without monkey-patching: the app is imported before gevent."""
    runner = os.path.join(ROOT, 'tests', 'apps', 'ws_nopatch.py')
    fd, log_path = tempfile.mkstemp(prefix='eio-live-nopatch-', suffix='.log')
    with os.fdopen(fd, 'wb') as log_file:
        proc = subprocess.Popen(
            [sys.executable, runner, APP], cwd=ROOT, env=_child_env(None),
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
    server = LiveServer('pywsgi-nopatch', APP, None, log_path, proc)
    deadline = time.monotonic() + 20
    while not server.port:
        found = re.search(r'^LISTENING (\d+)$', server.log(), re.MULTILINE)
        if found:
            server.port = int(found.group(1))
        elif proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise ServerStartError(f'nopatch runner failed:\n{server.log()}')
        else:
            time.sleep(0.05)  # waiting for the process to print its port
    return server


EXPECTED = {
    'pywsgi-nopatch': {'async_mode': 'gevent', 'task': 'greenlet'},
    'gunicorn-gevent': {'async_mode': 'gevent', 'task': 'greenlet'},
    'werkzeug': {'async_mode': 'threading', 'task': 'thread'},
    'gunicorn-gthread': {'async_mode': 'threading', 'task': 'thread'},
}


@pytest.fixture(params=sorted(EXPECTED))
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    kind = request.param
    live = start_nopatch() if kind == 'pywsgi-nopatch' else start_server(kind, APP)
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
