"""Several processes serving one application without sharing sessions: each
process says so once, at WARNING, with the ways out; ordinary unknown sids
(garbage, sessions this process ended, old sids after a restart) say nothing.

Signal (a): one gunicorn with -w 2 (the kernel spreads connections over both
workers). Signal (b): two one-worker gunicorns behind nginx balancing every
request round robin, so that a session's requests alternate between them.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.cluster.services import Nginx
from tests.integration.gunicorn_runner import Gunicorn, start_gunicorn
from tests.live import PollingClient, decode_payload, http_request, wait_until

WORKERS = {
    'gevent': ['-k', 'gevent'],
    'gthread': ['-k', 'gthread', '--threads', '20'],
}
#: grace after the first request: ping interval + ping timeout = 2 s
QUICK = {'EIO_PING_INTERVAL': '1', 'EIO_PING_TIMEOUT': '1'}
WARNING = re.compile(r'\[(\d+)\] \[WARNING\] engineio_wsgi: several processes serve this '
                     r'Engine\.IO application')
WAYS_OUT = ('gunicorn -w 1', '"ip_hash;"', '"hash $remote_addr;"', "transports=['websocket']",
            "cluster='redis://")


def warnings(*servers: Gunicorn) -> list[tuple[str, str]]:
    """(pid, line) of every warning line in the servers' logs."""
    found = []
    for server in servers:
        for line in server.text().splitlines():
            match = WARNING.search(line)
            if match:
                found.append((match.group(1), line))
    return found


def handshake_marker(port: int, server: Gunicorn) -> None:
    """A handshake whose connect line is in the log: every line a process wrote
    before its earlier answers is in the log too (one pipe, in write order)."""
    client = PollingClient(port)
    client.handshake()
    wait_until(lambda: f'echo: connect {client.sid}' in server.text(), timeout=10,
               message='the connect line of the marker handshake')
    client.close()


def other_tag_sid(sid: str) -> str:
    """A sid of the server's shape with another process's tag."""
    tag = 'AAAA' if not sid.startswith('AAAA') else 'BBBB'
    return tag + sid[4:]


@pytest.mark.timeout(90)
@pytest.mark.parametrize('worker', sorted(WORKERS))
def test_gunicorn_with_two_workers_warns_once_in_each_worker(worker):
    server = start_gunicorn(WORKERS[worker], 'tests.apps.echo:app', QUICK, extra=['-w', '2'])
    try:
        # the kernel hands each new connection to either worker: keep opening
        # sessions until both have had their first request
        deadline = time.monotonic() + 40
        while len({pid for pid, _ in warnings(server)}) < 2 and time.monotonic() < deadline:
            PollingClient(server.port).handshake()
        pids = {pid for pid, _ in warnings(server)}
        assert len(pids) == 2, server.text()
        # more traffic, sids landing on the other worker included: nothing more
        for _ in range(10):
            client = PollingClient(server.port)
            client.handshake()
            client.get(timeout=5)
        handshake_marker(server.port, server)
        found = warnings(server)
    finally:
        server.kill()
    assert len(found) == 2, found
    for _, line in found:
        assert 'gunicorn runs 2 worker processes on one socket' in line, line
        for way in WAYS_OUT:
            assert way in line, (way, line)


@pytest.mark.timeout(90)
def test_gunicorn_with_two_workers_serving_websocket_only_says_nothing():
    env = {**QUICK, 'EIO_TRANSPORTS': 'websocket'}
    server = start_gunicorn(WORKERS['gevent'], 'tests.apps.echo:app', env,
                            extra=['-w', '2', '--log-level', 'info'])
    served = re.compile(r'\[(\d+)\] \[INFO\] engineio_wsgi: serving websocket')
    try:
        deadline = time.monotonic() + 40
        while (len(set(served.findall(server.text()))) < 2 and time.monotonic() < deadline):
            # any Engine.IO request is a worker's first; this one is refused (400)
            http_request(server.port, 'GET', '/engine.io/?EIO=4&transport=polling')
        assert len(set(served.findall(server.text()))) == 2, server.text()
    finally:
        server.kill()
    assert warnings(server) == [], server.text()


def _round(front: Nginx) -> None:
    """What a polling client does: a handshake, then polls. Through the front,
    every request goes to the next backend: the first poll lands on the other
    one (400), the second on the session's own, where it waits for the next
    ping (1 s). Three requests a round: the next round starts on the other
    backend."""
    client = PollingClient(front.port)
    client.handshake()
    assert client.get(timeout=10).status == 400
    resp = client.get(timeout=10)
    assert resp.status == 200 and decode_payload(resp.body) == [('2', '')], resp


@pytest.mark.timeout(120)
@pytest.mark.parametrize('worker', sorted(WORKERS))
def test_round_robin_over_two_servers_warns_once_in_each(worker, gunicorns, nginx_front):
    a, b = gunicorns(2, WORKERS[worker], env=QUICK)
    front = nginx_front([a.port, b.port])
    deadline = time.monotonic() + 60
    while len(warnings(a, b)) < 2 and time.monotonic() < deadline:
        _round(front)
    assert len(warnings(a)) == 1 and len(warnings(b)) == 1, (a.text(), b.text())
    for _ in range(3):
        _round(front)
    handshake_marker(a.port, a)
    handshake_marker(b.port, b)
    found = warnings(a, b)
    assert len(found) == 2, found
    for _, line in found:
        assert 'requests in 10 s named sessions that another process opened' in line, line
        for way in WAYS_OUT:
            assert way in line, (way, line)


@pytest.mark.timeout(60)
def test_garbage_and_ended_sids_say_nothing_and_other_process_sids_do():
    server = start_gunicorn(WORKERS['gevent'], 'tests.apps.echo:app', QUICK)
    try:
        client = PollingClient(server.port)
        client.handshake()
        # two pings: more than ping interval + ping timeout since the first request
        pings = 0
        while pings < 2:
            packets = client.poll(timeout=10)
            if ('2', '') in packets:
                pings += 1
                client.pong()
        client.close()
        ended = client.sid
        wait_until(lambda: f'echo: disconnect {ended}' in server.text(), timeout=10,
                   message='the session ended')
        for sid in [ended] * 5 + ['x' * 20, 'garbage', ended[:19], ended + 'x', '-' * 20]:
            resp = http_request(server.port, 'GET', f'/engine.io/?EIO=4&transport=polling&sid={sid}')
            assert resp.status == 400, resp
        handshake_marker(server.port, server)
        assert warnings(server) == [], server.text()
        # the same process, the same rule: sids another process issued count
        for _ in range(3):
            resp = http_request(server.port, 'GET', '/engine.io/?EIO=4&transport=polling&sid='
                                + other_tag_sid(ended))
            assert resp.status == 400, resp
        wait_until(lambda: warnings(server), timeout=10, message='the warning')
    finally:
        server.kill()
    assert len(warnings(server)) == 1, server.text()


@pytest.mark.timeout(60)
def test_old_sids_right_after_a_restart_say_nothing():
    env = {'EIO_PING_INTERVAL': '2', 'EIO_PING_TIMEOUT': '1'}   # 3 s of grace
    before = start_gunicorn(WORKERS['gthread'], 'tests.apps.echo:app', env)
    try:
        old = []
        for _ in range(5):
            client = PollingClient(before.port)
            client.handshake()
            old.append(client.sid)
    finally:
        before.kill()
    after = start_gunicorn(WORKERS['gthread'], 'tests.apps.echo:app', env)
    try:
        # clients of the process that was restarted, still on their old sids
        for sid in old:
            resp = http_request(after.port, 'POST', f'/engine.io/?EIO=4&transport=polling&sid={sid}',
                                body=b'4hello', headers=[('Content-Type', 'text/plain')])
            assert resp.status == 400, resp
        handshake_marker(after.port, after)
        assert warnings(after) == [], after.text()
    finally:
        after.kill()
