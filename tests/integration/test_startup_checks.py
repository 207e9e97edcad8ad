"""Mistakes of configuration fail at start where the server is known then
(gunicorn's worker class), else at the first request, with the line that
fixes them; the library's warnings carry the server log's format."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.gunicorn_runner import start_gunicorn
from tests.live import ROOT, PollingClient, expect_error, http_request, start_server, wait_until


@pytest.mark.parametrize('worker', ['gthread', 'sync'])
def test_gevent_mode_in_a_threaded_gunicorn_worker_fails_at_start_with_the_fix(worker):
    server = start_gunicorn(['-k', worker], 'tests.apps.echo:app', {'EIO_ASYNC_MODE': 'gevent'})
    try:
        # the worker cannot boot: gunicorn stops
        wait_until(lambda: server.proc.poll() is not None, timeout=20,
                   message='gunicorn stopping')
    finally:
        server.kill()
    assert server.proc.returncode != 0
    errors = [line for line in server.text().splitlines() if line.startswith('ValueError')]
    assert len(errors) == 1, server.text()
    assert f'async_mode="gevent", but gunicorn -k {worker} runs requests on threads' in errors[0]
    assert 'Fix: Server(async_mode="threading")' in errors[0]
    assert 'gunicorn -k gevent' in errors[0]


def test_gevent_mode_with_preload_in_gthread_fails_before_gunicorn_listens():
    # --preload builds the application in gunicorn's master, which knows the worker class
    out = subprocess.run(
        [sys.executable, '-m', 'gunicorn', '--preload', '-k', 'gthread', '-b', '127.0.0.1:0',
         '--no-control-socket', 'tests.apps.echo:app'],
        cwd=ROOT, env={**os.environ, 'PYTHONPATH': ROOT, 'EIO_ASYNC_MODE': 'gevent'},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert 'Listening at' not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('ValueError: async_mode="gevent", but gunicorn -k gthread'), out.stderr


def test_gevent_mode_on_a_threaded_server_refuses_with_the_fix():
    # werkzeug starts after the application is built: found at the first request.
    # No EIO_LOG_LEVEL: the application configures no logging, as most do not
    with start_server('werkzeug', env={'EIO_ASYNC_MODE': 'gevent'}) as server:
        for _ in range(2):   # the first request and every later one
            resp = http_request(server.port, 'GET', '/engine.io/?EIO=4&transport=polling',
                                timeout=10)
            body = expect_error(resp, 500, 3)
            assert body['message'] == 'Server misconfigured (see its log)'
        # the application's own routes are served as ever
        assert http_request(server.port, 'GET', '/').status == 200
        assert server.wait_for_log('Fix: Server(async_mode="threading")'), server.log_tail()
        log = server.log()
    lines = [line for line in log.splitlines() if 'async_mode="gevent"' in line]
    assert len(lines) == 1, log
    assert 'runs this request on a thread' in lines[0]
    assert 'gunicorn -k gevent' in lines[0]
    assert 'Traceback' not in log
    assert 'serving polling' not in log   # no start-up line that says it serves


@pytest.mark.parametrize('kind', ['pywsgi-nopatch', 'gunicorn-gevent'])
def test_gevent_mode_on_gevent_is_served(kind):
    with start_server(kind, env={'EIO_ASYNC_MODE': 'gevent'}) as server:
        client = PollingClient(server)
        client.handshake()
        client.send('hello')
        assert client.receive(1) == ['hello']
        client.close()
        assert 'misconfigured' not in server.log()
        assert 'async_mode=' not in server.log()


def test_threading_mode_in_a_patched_worker_works_and_says_the_better_fit():
    with start_server('gunicorn-gevent', env={'EIO_ASYNC_MODE': 'threading'}) as server:
        client = PollingClient(server)
        client.handshake()
        client.send('hello')
        assert client.receive(1) == ['hello']
        client.close()
        assert server.wait_for_log('Fix: Server(async_mode="gevent")'), server.log_tail()
        lines = [line for line in server.log().splitlines() if 'async_mode="threading"' in line]
    assert len(lines) == 1 and '[WARNING]' in lines[0], lines


def test_a_warning_of_the_library_carries_gunicorns_format():
    # the summary of rejected requests: logged at the first rejection
    with start_server('gunicorn-gthread') as server:
        expect_error(http_request(server.port, 'GET', '/engine.io/?EIO=3&transport=polling'),
                     400, 5)
        assert server.wait_for_log('rejected requests in the last'), server.log_tail()
        lines = [line for line in server.log().splitlines()
                 if 'rejected requests in the last' in line]
    assert len(lines) == 1, lines
    # gunicorn's "[time] [pid] [WARNING] ..." instead of Python's bare last-resort
    # line, and whose line it is
    assert '[WARNING] engineio_wsgi: rejected requests' in lines[0], lines[0]
