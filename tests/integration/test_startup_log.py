"""The start-up lines under gunicorn with its default logging: visible in its
error log, and the sync worker named with what it costs."""

from __future__ import annotations

from tests.integration.gunicorn_runner import start_gunicorn
from tests.live import PollingClient, http_request, start_server, wait_until


def test_the_transports_line_is_in_gunicorns_log_without_any_logging_setup():
    # no EIO_LOG_LEVEL: the app configures no logging, as most do not
    with start_server('gunicorn-gthread', env={'EIO_PING_INTERVAL': '1'}) as server:
        PollingClient(server).handshake()
        assert server.wait_for_log('engineio_wsgi: serving polling, websocket on gunicorn'), \
            server.log_tail()
        log = server.log()
    line = next(line for line in log.splitlines() if 'engineio_wsgi: serving' in line)
    assert '[INFO]' in line   # gunicorn's own format, at its default level


def test_the_sync_worker_is_named_and_its_cost_said():
    server = start_gunicorn(['-k', 'sync', '--log-level', 'info'], 'tests.apps.echo:app', {})
    try:
        resp = http_request(server.port, 'GET', '/engine.io/?EIO=4&transport=polling', timeout=10)
        assert resp.status == 200, resp
        wait_until(lambda: 'WebSocket is not available' in server.text(), timeout=10,
                   message='the start-up lines')
    finally:
        server.kill()
    errors = [line for line in server.text().splitlines() if '[ERROR]' in line]
    assert len(errors) == 1, server.text()
    assert 'gunicorn (sync worker) serves one request at a time' in errors[0]
    assert 'ordinary routes' in errors[0]
    assert 'gunicorn -k gthread' in errors[0] and 'gunicorn -k gevent' in errors[0]
