"""examples/cluster as a newcomer runs it: ``run.sh`` starts redis-server,
``gunicorn -k gevent -w 3`` with ``cluster=`` and nginx with the example's
round-robin config; headless Chromium loads the demo page through nginx,
connects over polling, upgrades to WebSocket, echoes, disconnects and
connects again (tests/interop/browser.mjs). The same page also on the other
layout: three one-worker gunicorns (gevent, gevent, gthread) behind nginx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.services import free_port
from tests.cluster.topology import running_cluster
from tests.interop.test_browser import MESSAGES, DemoServer, run_browser
from tests.live import ROOT, PollingClient, http_request, wait_until

pytestmark = pytest.mark.timeout(180)

RUN = os.path.join(ROOT, 'examples', 'cluster', 'run.sh')


class Example(DemoServer):
    port: int
    redis_url: str


@pytest.fixture(scope='module')
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    port, redis_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp('example') / 'run.log'
    env = {**os.environ, 'PORT': str(port), 'BACKEND_PORT': str(free_port()),
           'REDIS_PORT': str(redis_port), 'PYTHON': sys.executable, 'PYTHONPATH': ROOT,
           'PATH': os.environ.get('PATH', '') + ':/usr/sbin:/sbin'}
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(['bash', RUN], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Example(f'http://127.0.0.1:{port}/', str(log_path), proc=proc)
    server.port = port
    server.redis_url = f'redis://127.0.0.1:{redis_port}/0'
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
        example: Example, tmp_path: Path) -> None:
    check_page(run_browser(example, tmp_path), example.log(), 'run.sh')


def emit(example: Example, sid: str, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'examples', 'cluster', 'emit.py'), sid, text],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={**os.environ, 'PYTHONPATH': ROOT, 'REDIS_URL': example.redis_url})


def test_emit_py_reaches_a_session_of_the_example(example: Example) -> None:
    """The README's Emitter example: a message from a process that serves
    nothing reaches a session opened through nginx; a sid of a process that
    is not there is reported, with exit code 1."""
    client = PollingClient(example.port)
    client.handshake()
    done = emit(example, client.sid, 'hello from outside ✓')
    assert (done.returncode, done.stdout.strip()) == (0, 'delivered to the owner'), done.stderr
    assert client.receive(1) == ['hello from outside ✓']
    client.close()
    gone = emit(example, 'ZZZZ' + client.sid[4:], 'to nobody')
    assert (gone.returncode, gone.stdout.strip()) == (
        1, 'no such session: its worker is gone'), gone.stderr


def check_page(report: dict, log: str, where: str) -> None:
    assert report['error'] is None, (
        f'{report["error"]}\nsteps: {report["steps"]}\nconsole: {report["console"]}\n'
        f'page errors: {report["page_errors"]}\nlog:\n{log[-4000:]}')
    assert report['page_errors'] == [] and report['failed_requests'] == [], where
    page = report['connected']
    assert (page['state'], page['transport'], page['upgraded']) == ('open', 'websocket', 'true')
    assert [m['text'] for m in page['messages'] if m['direction'] == 'in'] == MESSAGES
    sid = page['socket_id']
    assert f'open over polling, session {sid}' in page['events'], page['events']
    assert f'{sid} opened over polling' in log and f'{sid} upgraded to websocket' in log
    new = report['reconnected']
    assert new['state'] == 'open' and new['socket_id'] not in (None, sid)
    assert 'Traceback' not in log, log[-4000:]


def test_the_demo_page_on_three_one_worker_servers(tmp_path: Path) -> None:
    with running_cluster('three-servers', app='app:app',
                         extra=['--chdir', os.path.join(ROOT, 'examples', 'cluster')],
                         discover=False) as cluster:
        report = run_browser(DemoServer(cluster.url + '/', os.devnull), tmp_path)
        check_page(report, cluster.log(), 'three servers')
