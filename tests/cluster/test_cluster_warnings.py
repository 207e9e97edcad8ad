"""The cluster's warnings carry the server log's format, also when the
application configures no logging (no EIO_LOG_LEVEL here)."""

from __future__ import annotations

from tests.cluster.services import RedisServer, free_port
from tests.live import http_request, wait_until

APP = 'tests.apps.cluster_echo:app'


def _lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_redis_that_does_not_answer_is_said_in_gunicorns_format(gunicorns):
    # nothing listens on this port: the node's inbox never subscribes
    url = f'redis://127.0.0.1:{free_port()}/0'
    (server,) = gunicorns(1, ['-k', 'gthread', '--threads', '20'], app=APP,
                          env={'EIO_CLUSTER': url})
    resp = http_request(server.port, 'GET', '/engine.io/?EIO=4&transport=polling', timeout=15)
    assert resp.status == 503, resp
    lines = wait_until(lambda: _lines(server.text(), 'is unreachable'), timeout=15,
                       message='the error that Redis is unreachable')
    assert len(lines) == 1, server.text()
    # gunicorn's "[time] [pid] [ERROR] ..." instead of Python's bare last-resort line
    assert '[ERROR] engineio_wsgi: cluster node ' in lines[0], lines[0]
    # never subscribed: nothing was lost
    assert not _lines(server.text(), 'lost Redis'), server.text()


def test_redis_lost_later_is_said_in_gunicorns_format(redis_server: RedisServer, gunicorns):
    (server,) = gunicorns(1, ['-k', 'gevent'], app=APP, env={'EIO_CLUSTER': redis_server.url})
    resp = http_request(server.port, 'GET', '/engine.io/?EIO=4&transport=polling', timeout=15)
    assert resp.status == 200, resp
    redis_server.kill()
    wait_until(lambda: _lines(server.text(), 'lost Redis'), timeout=15,
               message='the inbox warning')
    lines = _lines(server.text(), 'lost Redis')
    assert len(lines) == 1, server.text()
    assert '[WARNING] engineio_wsgi: cluster inbox ' in lines[0], lines[0]
