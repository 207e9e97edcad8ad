"""What the server says about the WSGI server it runs on, once, at the first request."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from tests.live import ROOT

SINGLE_THREADED = {
    'wsgiref': """
        from wsgiref.simple_server import make_server
        server = make_server('127.0.0.1', 0, app)
        print('LISTENING', server.server_port, flush=True)
        server.serve_forever()
    """,
    'werkzeug-unthreaded': """
        from werkzeug.serving import make_server
        server = make_server('127.0.0.1', 0, app, threaded=False)
        print('LISTENING', server.server_port, flush=True)
        server.serve_forever()
    """,
}


def run(server_code: str):
    code = textwrap.dedent("""
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        import engineio_wsgi
        eio = engineio_wsgi.Server(async_mode='threading')
        app = engineio_wsgi.WSGIApp(eio)
    """) + textwrap.dedent(server_code)
    return subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize('name', sorted(SINGLE_THREADED))
def test_single_threaded_server_is_named_and_websocket_not_offered(name):
    proc = run(SINGLE_THREADED[name])
    try:
        line = proc.stdout.readline()
        assert line.startswith('LISTENING'), proc.stderr.read()
        port = int(line.split()[1])
        url = f'http://127.0.0.1:{port}/engine.io/?EIO=4&transport=polling'
        for _ in range(2):
            with urllib.request.urlopen(url, timeout=5) as res:
                info = json.loads(res.read()[1:])
            assert info['upgrades'] == []
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=5)
    errors = [line for line in err.splitlines() if line.startswith('ERROR:engineio_wsgi')]
    assert len(errors) == 1, err     # said once, not per request
    assert 'one request at a time' in errors[0]
    assert 'gunicorn -k gevent' in errors[0] and 'gthread' in errors[0]
    assert 'WARNING:engineio_wsgi.pipeline:WebSocket is not available' in err
