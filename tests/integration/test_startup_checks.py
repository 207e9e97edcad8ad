"""Mistakes of configuration fail at the first request with the line that
fixes them, and the library's warnings carry the server log's format."""

from __future__ import annotations

import pytest

from tests.live import PollingClient, expect_error, http_request, start_server


@pytest.mark.parametrize('kind', ['gunicorn-gthread', 'werkzeug'])
def test_gevent_mode_on_a_threaded_server_refuses_with_the_fix(kind):
    # no EIO_LOG_LEVEL: the application configures no logging, as most do not
    with start_server(kind, env={'EIO_ASYNC_MODE': 'gevent'}) as server:
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
    if kind.startswith('gunicorn'):
        assert '[ERROR]' in lines[0], lines[0]   # gunicorn's format
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
