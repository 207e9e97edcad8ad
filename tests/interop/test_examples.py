"""The examples (examples/flask_app, examples/django_project) under gunicorn's
gevent and gthread workers, run as their READMEs say: the framework's own routes
still answer, and the official JS client (in Node) connects on every transport,
talks, and gets the messages an ordinary route pushes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.live import ROOT, LiveServer, http_request, start_server

from .conftest import KINDS
from .test_node_client import MODES
from .tools import chromium, client_js, run_node_script

pytestmark = pytest.mark.interop

EXAMPLES = {
    # name: (folder, gunicorn app, page heading)
    'flask': ('examples/flask_app', 'app:app', 'Flask + engineio_wsgi'),
    'django': ('examples/django_project', 'mysite.wsgi:application', 'Django + engineio_wsgi'),
}


@pytest.fixture(scope='module', params=[(e, k) for e in EXAMPLES for k in KINDS],
                ids=lambda p: f'{p[0]}-{p[1]}')
def example(request: pytest.FixtureRequest) -> Iterator[tuple[str, LiveServer]]:
    """The example running in gunicorn, started from its own folder's modules."""
    name, kind = request.param
    folder, app, _ = EXAMPLES[name]
    path = os.pathsep.join([os.path.join(ROOT, folder), ROOT])
    with start_server(kind, app=app, env={'PYTHONPATH': path}) as server:
        yield name, server


def get(server: LiveServer, path: str, method: str = 'GET', body: bytes | None = None) -> Any:
    return http_request(server.port, method, path, body=body,
                        headers={'Content-Type': 'text/plain'} if body is not None else None)


def test_framework_routes(example: tuple[str, LiveServer]) -> None:
    name, server = example
    page = get(server, '/')
    assert page.status == 200 and page.content_type.startswith('text/html'), page
    assert f'<h1>{EXAMPLES[name][2]}</h1>' in page.text
    stats = get(server, '/api/stats')
    assert stats.status == 200 and stats.content_type.startswith('application/json'), stats
    assert set(stats.json()) == {'online', 'messages'}
    empty = get(server, '/api/announce', 'POST', b'')
    assert empty.status == 400 and empty.json() == {'error': 'empty announcement'}
    wrong_method = get(server, '/api/announce')
    assert wrong_method.status == 405
    missing = get(server, '/no/such/page')
    assert missing.status == 404 and 'Not Found' in missing.text
    # and the Engine.IO endpoint is the server's, not the framework's
    handshake = get(server, '/engine.io/?EIO=4&transport=polling')
    assert handshake.status == 200 and handshake.body.startswith(b'0{"sid":'), handshake
    bad = get(server, '/engine.io/?EIO=3&transport=polling')
    assert bad.status == 400 and bad.json()['code'] == 5


def test_js_client(example: tuple[str, LiveServer]) -> None:
    """One client at a time (the examples broadcast): welcome, its own chat message
    back, and an announcement pushed by the ordinary route while it is connected."""
    _, server = example
    cases = []
    for mode, options in MODES.items():
        cases.append({
            **options, 'name': mode, 'url': server.url, 'wait_upgrade': mode == 'default',
            'send': [{'text': f'hello from {mode} ✓'}], 'expect': 3, 'timeout_ms': 15000,
            'fetch': [{'method': 'POST', 'path': '/api/announce', 'body': f'news for {mode}'},
                      {'method': 'GET', 'path': '/api/stats'}],
        })
    report = run_node_script('node_client.mjs', {'cases': cases, 'parallel': False}, timeout=60)
    for case in report['cases']:
        mode = case['name']
        assert case['error'] is None, f'{mode}: {case["error"]}\n{case["events"]}'
        messages = [json.loads(m['data']) for m in case['received']]
        assert messages[0]['type'] == 'welcome' and messages[0]['you'] == case['sid'][:6]
        assert messages[0]['online'] >= 1
        rest = sorted(messages[1:], key=lambda m: m['type'])
        assert rest == [
            {'type': 'announcement', 'text': f'news for {mode}'},
            {'type': 'chat', 'from': case['sid'][:6], 'text': f'hello from {mode} ✓'},
        ], messages
        assert case['fetched'][0] == {'status': 200, 'body': case['fetched'][0]['body']}
        assert json.loads(case['fetched'][0]['body']) == {'sent': True}
        stats = json.loads(case['fetched'][1]['body'])
        assert case['fetched'][1]['status'] == 200 and stats['online'] >= 1
        assert stats['messages'] >= 1
        want = 'polling' if mode == 'polling' else 'websocket'
        assert case['transport_final'] == want
        if mode == 'default':
            assert case['upgrade_ms'] is not None


CLIENT_URL = 'https://cdn.jsdelivr.net/npm/engine.io-client@6.6.8/dist/engine.io.min.js'


def page_in_chromium(server: LiveServer, tmp_path: Any, cdn: str, wait_for: str) -> dict[str, Any]:
    report = run_node_script('example_page.mjs', {
        'url': server.url + '/', 'chromium': chromium(), 'user_data_dir': str(tmp_path / 'chromium'),
        'client_js': client_js(), 'cdn': cdn, 'wait_for': wait_for, 'timeout_ms': 15000,
    }, timeout=60)
    assert report['error'] is None, report
    return report


def test_page_says_when_the_client_script_cannot_load(example: tuple[str, LiveServer],
                                                      tmp_path: Any) -> None:
    """Offline (the CDN unreachable) the page shows an error, not 'connecting' forever."""
    _, server = example
    report = page_in_chromium(server, tmp_path, 'blocked', 'could not load')
    assert report['state_text'] == (f'error: could not load the Engine.IO client script '
                                    f'({CLIENT_URL}); is the network reachable?'), report
    assert report['state_class'] == 'error', report
    assert report['page_errors'] == [], report


def test_page_connects_in_a_browser(example: tuple[str, LiveServer], tmp_path: Any) -> None:
    """With the client script (the npm copy, served for the CDN's URL) the page connects."""
    _, server = example
    report = page_in_chromium(server, tmp_path, 'local', 'connected over websocket')
    assert report['state_text'] == 'connected over websocket', report
    assert report['page_errors'] == [], report
