"""A cluster whose Redis is not there when its processes start: polling
handshakes are refused with 503 code 3 (the client retries) and one ERROR
line names the URL, until Redis answers; then sessions are opened and served
across processes as usual. A WebSocket-only session, which lives on its one
connection, is served meanwhile. ``Server.cluster_ready()`` tells a health
check the same.

Redis is a real redis-server started late, on a port chosen up front."""

from __future__ import annotations

import json
import logging
import queue
import shutil
from collections.abc import Iterator
from typing import Any

import engineio  # type: ignore[import-untyped]
import pytest
import webtest

from engineio_wsgi import WSGIApp
from engineio_wsgi.server import Server
from tests.cluster.services import RedisServer, free_port, temp_dir
from tests.live import Packet, PollingClient, expect_error, http_request, wait_until

pytestmark = pytest.mark.timeout(90)

GEVENT = ['-k', 'gevent']


@pytest.fixture
def late_redis() -> Iterator[RedisServer]:
    """A redis-server whose port is known but which the test starts itself."""
    directory = temp_dir('eio-redis-')
    server = RedisServer(directory)
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


def handshake_status(port: int) -> int:
    return http_request(port, 'GET', '/engine.io/?EIO=4&transport=polling', timeout=5).status


def unreachable_lines(log: str, url: str) -> list[str]:
    return [line for line in log.splitlines()
            if f'Redis at {url} is unreachable' in line]


def cluster_records(caplog, level: int) -> list[str]:
    """The cluster's own records at ``level`` or above (the reject log's
    summary of the 503s and the note on the test's WSGI server aside)."""
    return [r.getMessage() for r in caplog.records
            if r.levelno >= level and r.name.startswith('engineio_wsgi.cluster')]


def test_handshakes_wait_for_redis_across_real_workers(late_redis, gunicorns):
    env = {'EIO_CLUSTER': late_redis.url, 'EIO_LOG_LEVEL': 'INFO'}
    a, b = gunicorns(2, GEVENT, app='tests.apps.cluster_echo:app', env=env)
    for _ in range(3):
        resp = http_request(a.port, 'GET', '/engine.io/?EIO=4&transport=polling', timeout=5)
        expect_error(resp, 503, 3)
    ws = engineio.Client(handle_sigint=False, request_timeout=10)
    got: queue.Queue[Any] = queue.Queue()
    ws.on('message', got.put)
    ws.connect(f'http://127.0.0.1:{a.port}', transports=['websocket'])
    try:
        ws.send('on its one connection')
        assert got.get(timeout=5) == 'on its one connection'
    finally:
        ws.disconnect()
    lines = unreachable_lines(a.text(), late_redis.url)
    assert len(lines) == 1, a.text()
    assert 'ERROR' in lines[0] and 'new polling sessions are refused with 503' in lines[0], lines

    late_redis.start()
    wait_until(lambda: handshake_status(a.port) == 200, timeout=15,
               message='a handshake accepted once Redis answers')
    owner = PollingClient(a.port)
    owner.handshake()
    on_b = PollingClient(b.port)
    on_b.sid = owner.sid
    assert on_b.post(Packet.message('across')).status == 200
    assert owner.receive(1) == ['across']
    assert len(unreachable_lines(a.text(), late_redis.url)) == 1, a.text()
    assert 'Traceback' not in a.text() + b.text()


def test_cluster_ready_and_one_error_line_until_redis_answers(late_redis, caplog):
    caplog.set_level(logging.INFO, logger='engineio_wsgi')
    url = late_redis.url
    eio = Server(cluster=url, async_mode='threading')
    app = webtest.TestApp(WSGIApp(eio))
    try:
        assert eio.cluster_ready() is False
        for _ in range(3):
            resp = app.get('/engine.io/?EIO=4&transport=polling', status=503)
            assert resp.json == {'code': 3, 'message': 'Server unavailable'}
        errors = cluster_records(caplog, logging.WARNING)
        assert len(errors) == 1, errors
        assert errors[0].startswith(f'cluster node {eio._cluster.node}: Redis at {url} is '
                                    'unreachable ('), errors

        late_redis.start()
        wait_until(eio.cluster_ready, timeout=15, message='the inbox listening on Redis')
        resp = app.get('/engine.io/?EIO=4&transport=polling')
        assert json.loads(resp.text[1:])['sid'].startswith(eio._cluster.node)
        infos = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.INFO and 'answers' in r.getMessage()]
        assert infos == [f'cluster node {eio._cluster.node}: Redis at {url} answers; '
                         'new sessions are accepted'], infos
        assert cluster_records(caplog, logging.WARNING) == errors
    finally:
        eio.shutdown()
        if eio._cluster.inbox is not None:
            eio._cluster.inbox.stop()


def test_the_error_line_shows_no_password(caplog):
    caplog.set_level(logging.INFO, logger='engineio_wsgi')
    port = free_port()   # nothing listens there
    eio = Server(cluster=f'redis://app:secret@127.0.0.1:{port}/0', async_mode='threading')
    try:
        webtest.TestApp(WSGIApp(eio)).get('/engine.io/?EIO=4&transport=polling', status=503)
        (line,) = cluster_records(caplog, logging.WARNING)
        assert f'Redis at redis://app@127.0.0.1:{port}/0 is unreachable' in line, line
        assert 'secret' not in caplog.text
    finally:
        eio.shutdown()
        eio._cluster.inbox.stop()


def test_cluster_ready_without_cluster_is_true():
    assert Server(async_mode='threading').cluster_ready() is True
