"""examples/cluster as a newcomer runs it: ``run.sh`` starts redis-server,
``gunicorn -k gevent -w 3`` with ``cluster=`` and nginx with the example's
round-robin config; headless Chromium loads the demo page through nginx,
connects over polling, upgrades to WebSocket, echoes, disconnects and
connects again (tests/interop/browser.mjs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.services import free_port
from tests.interop.test_browser import MESSAGES, DemoServer, run_browser
from tests.live import ROOT, http_request, wait_until

pytestmark = pytest.mark.timeout(180)

RUN = os.path.join(ROOT, 'examples', 'cluster', 'run.sh')


@pytest.fixture
def example(tmp_path: Path) -> Iterator[DemoServer]:
    port = free_port()
    log_path = tmp_path / 'run.log'
    env = {**os.environ, 'PORT': str(port), 'BACKEND_PORT': str(free_port()),
           'REDIS_PORT': str(free_port()), 'PYTHON': sys.executable, 'PYTHONPATH': ROOT,
           'PATH': os.environ.get('PATH', '') + ':/usr/sbin:/sbin'}
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(['bash', RUN], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = DemoServer(f'http://127.0.0.1:{port}/', str(log_path), proc=proc)
    try:
        def page_served() -> bool:
            if proc.poll() is not None:
                pytest.fail(f'run.sh exited with {proc.returncode}:\n{server.log()}')
            try:
                return http_request(port, 'GET', '/', timeout=2).status == 200
            except OSError:
                return False
        wait_until(page_served, 40, message='the demo page through nginx')
        # all three workers booted
        wait_until(lambda: server.log().count('Booting worker with pid') >= 3, 20,
                   message='three workers')
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)      # as Ctrl+C would
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def test_the_example_serves_the_demo_page_through_round_robin_nginx(
        example: DemoServer, tmp_path: Path) -> None:
    report = run_browser(example, tmp_path)
    assert report['error'] is None, (
        f'{report["error"]}\nsteps: {report["steps"]}\nconsole: {report["console"]}\n'
        f'page errors: {report["page_errors"]}\nlog:\n{example.log()[-4000:]}')
    assert report['page_errors'] == []
    assert report['failed_requests'] == []
    page = report['connected']
    assert report['opened']['transport'] == 'polling'
    assert (page['state'], page['transport'], page['upgraded']) == ('open', 'websocket', 'true')
    got = page['messages']
    assert [m['text'] for m in got if m['direction'] == 'in'] == MESSAGES
    sid = page['socket_id']
    log = example.log()
    assert f'{sid} opened over polling' in log
    assert f'{sid} upgraded to websocket' in log
    new = report['reconnected']
    assert new['state'] == 'open' and new['socket_id'] not in (None, sid)
    assert 'Traceback' not in log, log[-4000:]
