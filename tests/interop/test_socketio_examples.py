"""The Socket.IO examples (examples/flask_socketio_chat on Flask-SocketIO,
examples/django_socketio on python-socketio in Django), run as their READMEs
say under gunicorn's gevent and gthread workers, driven by headless Chromium
through their own page (tests/interop/sio_examples.mjs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import ROOT, LiveServer, http_request, start_server

from .conftest import KINDS
from .sio_servers import assert_clean_log
from .tools import chromium, node_package, run_node_script

pytestmark = pytest.mark.interop

EXAMPLES = {
    # name: (folder, gunicorn app, page heading)
    'flask-socketio': ('examples/flask_socketio_chat', 'app:app', 'Flask-SocketIO rooms chat'),
    'django-python-socketio': ('examples/django_socketio', 'chatsite.wsgi:application',
                               'Django + python-socketio rooms chat'),
}
CDN_URL = 'https://cdn.jsdelivr.net/npm/socket.io-client@4.8.4/dist/socket.io.min.js'


@pytest.fixture(scope='module', params=[(e, k) for e in EXAMPLES for k in KINDS],
                ids=lambda p: f'{p[0]}-{p[1]}')
def example(request: pytest.FixtureRequest) -> Iterator[tuple[str, LiveServer]]:
    name, kind = request.param
    folder, app, _ = EXAMPLES[name]
    path = os.pathsep.join([os.path.join(ROOT, folder), ROOT])
    with start_server(kind, app=app, env={'PYTHONPATH': path}) as server:
        yield name, server


def test_page_pins_the_client_it_is_tested_with(example: tuple[str, LiveServer]) -> None:
    name, server = example
    page = http_request(server.port, 'GET', '/')
    assert page.status == 200 and page.content_type.startswith('text/html'), page
    assert f'<h1>{EXAMPLES[name][2]}</h1>' in page.text
    assert f'src="{CDN_URL}"' in page.text
    version = CDN_URL.split('@')[1].split('/')[0]
    with open(os.path.join(node_package('socket.io-client'), 'package.json'), encoding='utf-8') as f:
        assert f'"version": "{version}"' in f.read()


def test_browser_chat(example: tuple[str, LiveServer], tmp_path: Path) -> None:
    _, server = example
    client = os.path.join(node_package('socket.io-client'), 'dist', 'socket.io.min.js')
    report = run_node_script('sio_examples.mjs', {
        'url': server.url, 'chromium': chromium(), 'user_data_dir': str(tmp_path / 'profile'),
        'client_js': client, 'cdn_url': CDN_URL, 'timeout_ms': 20000}, timeout=120)
    assert report['error'] is None, f'{report["error"]}\nsteps: {report["steps"]}'
    assert report['page_errors'] == []
    assert report['transport'] == 'websocket'
    assert report['announce_kitchen'] == {'status': 200, 'body': {'sent': True, 'room': 'kitchen'}}
    assert report['announce_lobby'] == {'status': 200, 'body': {'sent': True, 'room': 'lobby'}}
    assert report['announce_empty'] == {'status': 400, 'body': {'error': 'empty announcement'}}
    assert report['rooms'] == {'lobby': 2, 'kitchen': 1}
    assert report['rooms_after'] == {'lobby': 1, 'kitchen': 1}
    # each room's talk and announcements reach its members only
    assert report['ann'] == [
        'system|ann joined lobby', 'system|cid joined lobby', 'chat|ann: hi lobby',
        'announcement|📣 lobby news', 'system|cid left']
    assert report['bob'] == ['system|bob joined kitchen', 'chat|bob: hi kitchen',
                             'announcement|📣 kitchen news']
    assert 'could not be loaded' in report['offline_status']
    assert_clean_log(server)
