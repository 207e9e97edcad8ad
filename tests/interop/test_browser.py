"""The demo page in headless Chromium, with the official browser client.

The page comes from ``python -m engineio_wsgi`` (started as a real subprocess,
on gevent and on threads) and from the same app under gunicorn's gevent and
gthread workers (tests/interop/demo_app.py). The browser (Debian's chromium,
driven by playwright-core: tests/interop/browser.mjs) loads it, waits until it
is connected and upgraded to WebSocket, sends messages through the page's
form, disconnects and reconnects with its button; the tests check what the page
shows, the server's log, and save a screenshot under pytest's tmp dir.
``EIO_DEMO_SCREENSHOT=docs/demo.png`` also copies one there.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import ROOT, http_request, start_server, wait_until

from .conftest import KINDS
from .tools import chromium, client_js, package_version, run_node_script

pytestmark = pytest.mark.interop

MESSAGES = [
    'Hello from headless Chromium 👋',
    'Ünïcödé ✓ Ελληνικά · русский · emoji 🎉🚀',
    '{"json": "looks like JSON", "stays": "text"}',
]


class DemoServer:
    def __init__(self, url: str, log_path: str, proc: subprocess.Popen[bytes] | None = None,
                 live: Any = None) -> None:
        self.url = url
        self.log_path = log_path
        self.proc = proc
        self.live = live

    def log(self) -> str:
        return Path(self.log_path).read_text(encoding='utf-8', errors='replace')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def python_m_demo(tmp_path: Path, *args: str) -> Iterator[DemoServer]:
    """``python -m engineio_wsgi --port P --client-js <npm copy> ARGS`` until the block ends."""
    js = client_js()
    log_path = tmp_path / 'demo-server.log'
    for _attempt in range(3):     # a free port can be taken before the server binds it
        port = free_port()
        cmd = [sys.executable, '-m', 'engineio_wsgi', '--port', str(port), '--client-js', js, *args]
        with open(log_path, 'wb') as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, 'PYTHONUNBUFFERED': '1'})
        server = DemoServer(f'http://127.0.0.1:{port}/', str(log_path), proc=proc)
        try:
            def served_or_exited(port: int = port, proc: subprocess.Popen = proc) -> str | None:
                if proc.poll() is not None:
                    return 'exited'
                with contextlib.suppress(OSError):
                    if http_request(port, 'GET', '/', timeout=2).status == 200:
                        return 'served'
                return None
            try:
                outcome = wait_until(served_or_exited, 20, interval=0.05)
            except AssertionError:
                outcome = 'silent'
            if outcome != 'served':
                if 'Address already in use' in server.log():
                    continue
                pytest.fail(f'{" ".join(cmd)} did not serve the page:\n{server.log()}')
            yield server
            return
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)     # as Ctrl+C would
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
    pytest.fail(f'could not start the demo server on a free port:\n{server.log()}')


@contextlib.contextmanager
def gunicorn_demo(kind: str) -> Iterator[DemoServer]:
    with start_server(kind, app='tests.interop.demo_app:app',
                      env={'EIO_DEMO_CLIENT_JS': client_js()}) as live:
        yield DemoServer(live.url + '/', live.log_path, live=live)


SERVERS = ['python -m (gevent)', 'python -m (threads)', *KINDS]


@pytest.fixture(params=SERVERS)
def demo_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DemoServer]:
    name = request.param
    if name == 'python -m (gevent)':
        with python_m_demo(tmp_path, '--async-mode', 'gevent') as server:
            yield server
    elif name == 'python -m (threads)':
        with python_m_demo(tmp_path, '--async-mode', 'threading') as server:
            yield server
    else:
        with gunicorn_demo(name) as server:
            yield server


def run_browser(server: DemoServer, tmp_path: Path) -> dict[str, Any]:
    screenshot = tmp_path / 'demo.png'
    profile = tmp_path / 'chromium-profile'      # a fresh user-data-dir every time
    report = run_node_script('browser.mjs', {
        'url': server.url, 'chromium': chromium(), 'user_data_dir': str(profile),
        'screenshot': str(screenshot), 'messages': MESSAGES, 'timeout_ms': 15000,
    }, timeout=90)
    report['screenshot_path'] = screenshot
    return report


def test_demo_page(demo_server: DemoServer, tmp_path: Path) -> None:
    report = run_browser(demo_server, tmp_path)
    assert report['error'] is None, (
        f'{report["error"]}\nsteps: {report["steps"]}\nconsole: {report["console"]}\n'
        f'page errors: {report["page_errors"]}\nserver log:\n{demo_server.log()[-3000:]}')
    assert report['page_errors'] == []
    assert not [line for line in report['console'] if line.startswith('error')], report['console']
    assert report['failed_requests'] == []

    # the official client, from the local copy: no CDN
    assert [url for url in report['scripts'] if not url.startswith(demo_server.url)] == []
    assert any(url.endswith('/client/engine.io.min.js') for url in report['scripts'])
    version = package_version('engine.io-client')
    assert report['connected']['client_text'] == f'engine.io-client {version} (local copy)'

    # connected over polling first, then upgraded to WebSocket
    opened, page = report['opened'], report['connected']
    assert opened['state'] == 'open'
    assert page['state'] == 'open' and page['state_text'] == 'Connected'
    assert (page['transport'], page['transport_text'], page['upgraded']) == (
        'websocket', 'WebSocket', 'true')
    assert re.fullmatch(r'upgraded [\d.]+ ms after opening, at \d\d:\d\d:\d\d\.\d{3}',
                        page['upgrade_text']), page['upgrade_text']
    sid = page['socket_id']
    assert sid and page['sid_text'] == f'session {sid}'
    assert any(e == f'open over polling, session {sid}' for e in page['events']), page['events']
    assert any(re.fullmatch(r'upgraded to websocket after [\d.]+ ms', e) for e in page['events'])

    # a live round-trip figure
    assert 0 < page['latency'] < 2000
    assert page['latency_text'] not in ('', '—')
    assert page['spark_bars'] >= 2

    # every message came back, verbatim, in order
    got = page['messages']
    assert [m['text'] for m in got if m['direction'] == 'out'] == MESSAGES
    assert [m['text'] for m in got if m['direction'] == 'in'] == MESSAGES
    assert all(re.fullmatch(r'sent · echoed in [\d.]+ ms', m['meta'])
               for m in got if m['direction'] == 'out'), got
    assert all(m['meta'] == 'echo via websocket' for m in got if m['direction'] == 'in'), got

    # the server saw that session open and upgrade
    log = demo_server.log()
    assert f'{sid} opened over polling' in log
    assert f'{sid} upgraded to websocket' in log

    # the Disconnect button closes it; Connect opens a new session
    assert report['disconnected']['state'] == 'closed'
    assert report['disconnected']['state_text'] == 'Disconnected'
    new = report['reconnected']
    assert new['state'] == 'open' and new['socket_id'] not in (None, sid)

    shot = report['screenshot_path']
    data = shot.read_bytes()
    assert data.startswith(b'\x89PNG\r\n\x1a\n') and len(data) > 20_000, f'{shot}: {len(data)} bytes'
    copy_to = os.environ.get('EIO_DEMO_SCREENSHOT')
    if copy_to:
        shutil.copyfile(shot, copy_to if os.path.isabs(copy_to) else os.path.join(ROOT, copy_to))


def test_demo_page_without_local_copy_uses_the_cdn(tmp_path: Path) -> None:
    """``--client-js cdn`` (what a checkout without node_modules gets): the page
    loads engine.io-client 6 from the CDN, pinned by its hash. No CDN is
    reachable here, so this looks at the HTML only."""
    with python_m_demo(tmp_path, '--client-js', 'cdn') as server:
        page = http_request(int(server.url.rsplit(':', 1)[1].strip('/')), 'GET', '/')
    assert page.status == 200 and page.content_type.startswith('text/html')
    html = page.text
    assert re.search(r'<script src="https://cdn\.jsdelivr\.net/npm/engine\.io-client@6\.[\d.]+/dist/'
                     r'engine\.io\.min\.js" integrity="sha384-[A-Za-z0-9+/=]+" '
                     r'crossorigin="anonymous"></script>', html), html[:2000]
    assert 'client/engine.io.min.js' not in html
    assert 'engine.io-client 6.6.8 (CDN)' in html


def test_cdn_copy_is_the_npm_version() -> None:
    """The CDN URL and its hash name the same file as package-lock.json installs."""
    from engineio_wsgi import __main__ as demo
    version = package_version('engine.io-client')
    assert f'/engine.io-client@{version}/' in demo.CDN_CLIENT_JS
    digest = hashlib.sha384(Path(client_js()).read_bytes()).digest()
    assert demo.CDN_CLIENT_JS_INTEGRITY == 'sha384-' + base64.b64encode(digest).decode()
