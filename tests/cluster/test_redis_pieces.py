"""The Redis pieces of the scale-out (engineio_wsgi.cluster) against a real
redis-server: connecting from cluster= values, node ids made after fork, and
the per-node inbox (order, fail fast, never twice, nothing dropped for a new
process that draws a remembered node id, a Redis restart)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from engineio_wsgi.cluster import inbox as inbox_module
from engineio_wsgi.cluster.connect import ClusterConfigError, redis_client
from engineio_wsgi.cluster.inbox import ClusterUnavailable, Inbox, Sender, channel
from engineio_wsgi.cluster.node import node_id, owner_of
from engineio_wsgi.cluster.wire import frame
from tests.cluster.services import LatencyProxy, RedisServer
from tests.integration.gunicorn_runner import start_gunicorn
from tests.live import ROOT, PollingClient, wait_until


def test_without_cluster_nothing_extra_is_imported():
    code = r'''
import json, sys
import webtest
from tests.apps.echo import app
resp = webtest.TestApp(app).get('/engine.io/?EIO=4&transport=polling')
assert resp.status_int == 200, resp
import engineio_wsgi.cluster.connect  # the package itself: still no redis-py
print(json.dumps(sorted(m for m in sys.modules
                        if m.split('.')[0] in ('redis', 'hiredis') or m == 'engineio_wsgi.cluster')))
'''
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, 'PYTHONPATH': ROOT})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == ['engineio_wsgi.cluster']


def test_a_server_without_cluster_imports_no_cluster_module():
    code = r'''
import sys
import webtest
from tests.apps.echo import app
webtest.TestApp(app).get('/engine.io/?EIO=4&transport=polling')
print(sorted(m for m in sys.modules if m.startswith('engineio_wsgi.cluster')
             or m.split('.')[0] == 'redis'))
'''
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, 'PYTHONPATH': ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


def test_cluster_values_connect_as_redis_py_reads_them(redis_server):
    for value in (redis_server.url, f'redis://127.0.0.1:{redis_server.port}/3',
                  f'unix://{redis_server.unix_socket}?db=2'):
        client = redis_client(value)
        try:
            assert client.ping() is True, value
        finally:
            client.close()
    tls = redis_client(f'rediss://127.0.0.1:{redis_server.port}/0')
    assert tls.connection_pool.connection_class.__name__ == 'SSLConnection'
    ready = redis_client(redis_server.url)
    assert redis_client(ready) is ready
    ready.close()
    for bad in ('http://127.0.0.1:1/', 'redis+sentinel://h:26379/m', 42, None):
        with pytest.raises(ClusterConfigError):
            redis_client(bad)


def test_node_ids_are_made_in_each_worker_after_fork():
    # --preload: the master imports the app and draws a tag; --max-requests 2:
    # the worker is replaced after two requests, by a new process
    server = start_gunicorn(['-k', 'gevent'], 'tests.apps.preload_tag:app', {},
                            extra=['--preload', '--max-requests', '2'])
    try:
        master = re.search(r'preload tag (\S{4})', server.text())
        assert master, server.text()
        tags: list[str | None] = []
        deadline = time.monotonic() + 30
        # a worker is replaced after two requests (once it notices): keep
        # opening sessions until a replacement issued some
        while len(set(tags)) < 2 and time.monotonic() < deadline:
            client = PollingClient(server.port)
            client.handshake()
            tags.append(owner_of(client.sid))
    finally:
        server.kill()
    assert len(set(tags)) >= 2, tags
    assert master.group(1) not in tags, (master.group(1), tags)



def test_node_ids_are_new_after_a_reload():
    # HUP: gunicorn replaces its workers with new processes forked from the
    # (preloaded) master; each must draw a node id of its own
    server = start_gunicorn(['-k', 'gevent'], 'tests.apps.preload_tag:app', {},
                            extra=['--preload'])
    try:
        master = re.search(r'preload tag (\S{4})', server.text())
        assert master, server.text()
        client = PollingClient(server.port)
        client.handshake()
        before = owner_of(client.sid)
        os.kill(server.proc.pid, signal.SIGHUP)
        after = before
        deadline = time.monotonic() + 30
        # the old worker serves until the new one is up: open sessions until one issued some
        while after == before and time.monotonic() < deadline:
            client = PollingClient(server.port)
            client.handshake()
            after = owner_of(client.sid)
    finally:
        server.kill()
    assert after != before, server.text()
    assert master.group(1) not in (before, after)

class Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, source: str, payload: bytes) -> None:
        with self.lock:
            self.messages.append((source, payload))

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [payload for _, payload in self.messages]


def _inbox(redis_server: RedisServer, node: str, handler: Collect) -> Inbox:
    inbox = Inbox(redis_client(redis_server.url), node, handler)
    inbox.start()
    assert inbox.subscribed.wait(10), redis_server.log()
    return inbox


def _publish_calls(client) -> int:
    return int(client.info('commandstats').get('cmdstat_publish', {}).get('calls', 0))


def test_messages_arrive_in_order_one_publish_each(redis_server):
    got = Collect()
    inbox = _inbox(redis_server, 'in01', got)
    client = redis_client(redis_server.url)
    try:
        sender = Sender(client, node_id())
        before = _publish_calls(client)
        sent = [f'm{i}'.encode() + b'\x00\xff' for i in range(300)]
        started = time.monotonic()
        for payload in sent:
            assert sender.send('in01', payload) is True
        wait_until(lambda: len(got.payloads()) == len(sent), timeout=10, message='all messages')
        elapsed = time.monotonic() - started
        assert got.payloads() == sent
        assert {source for source, _ in got.messages} == {node_id()}
        # one round trip per message: one PUBLISH, nothing else
        assert _publish_calls(client) - before == len(sent)
        assert elapsed < 10
    finally:
        inbox.stop()
        client.close()
    assert not inbox.running


def test_publishes_to_different_nodes_do_not_wait_for_one_another(redis_server):
    """With Redis 0.3 s away, ten publishes at once to ten nodes take about
    one round trip, not ten one after the other."""
    delay = 0.3
    proxy = LatencyProxy(redis_server.port, delay)
    client = redis_client(proxy.url())
    sender = Sender(client, node_id())
    targets = [f'lt{i:02d}' for i in range(10)]

    def publish_all() -> float:
        started = time.monotonic()
        threads = [threading.Thread(target=sender.send, args=(t, b'x')) for t in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return time.monotonic() - started
    try:
        publish_all()   # the connections are made (each costs round trips of its own)
        elapsed = publish_all()
        # one after the other they took at least 10 x 0.3 s
        assert elapsed < 4 * delay, f'10 publishes took {elapsed:.2f} s'
        assert len(inbox_module._locks()) == 0   # no lock kept for nodes nobody sends to
    finally:
        client.close()
        proxy.close()


def test_threads_sending_to_one_node_at_once_lose_nothing_and_keep_their_order(redis_server):
    """Sequence numbers are taken under the target's lock: the inbox never
    sees one go down (which it would drop as a duplicate)."""
    got = Collect()
    inbox = _inbox(redis_server, 'mt01', got)
    client = redis_client(redis_server.url)
    sender = Sender(client, node_id())

    def send(thread: int) -> None:
        for i in range(50):
            assert sender.send('mt01', f'{thread}:{i}'.encode()) is True
    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        wait_until(lambda: len(got.payloads()) == 8 * 50, timeout=10, message='all messages')
        for n in range(8):
            mine = [p for p in got.payloads() if p.startswith(f'{n}:'.encode())]
            assert mine == [f'{n}:{i}'.encode() for i in range(50)]
        assert inbox.dropped_duplicate == 0
    finally:
        inbox.stop()
        client.close()


_INBOX_PROCESS = r'''
import sys
if sys.argv[2] == 'gevent':
    from gevent import monkey
    monkey.patch_all()
import threading
from engineio_wsgi.cluster.connect import redis_client
from engineio_wsgi.cluster.inbox import Inbox
inbox = Inbox(redis_client(sys.argv[1]), 'kill', lambda s, p: print('got', p, flush=True))
inbox.start()
inbox.subscribed.wait(10)
print('ready', flush=True)
threading.Event().wait()
'''


@pytest.mark.parametrize('mode', ['threading', 'gevent'])
def test_a_message_for_a_node_that_is_gone_is_refused_at_once(redis_server, mode):
    client = redis_client(redis_server.url)
    sender = Sender(client, node_id())
    assert sender.send('none', b'x') is False     # no such node at all
    proc = subprocess.Popen([sys.executable, '-c', _INBOX_PROCESS, redis_server.url, mode],
                            cwd=ROOT, env={**os.environ, 'PYTHONPATH': ROOT},
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        assert sender.send('kill', b'hello') is True
        assert proc.stdout.readline().strip() == "got b'hello'"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        wait_until(lambda: sender.send('kill', b'again') is False, timeout=1.0,
                   message='PUBLISH answers 0 for the killed node')
        assert time.monotonic() - killed < 1.0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        client.close()


def test_an_inbox_started_while_redis_is_away_subscribes_when_it_comes(redis_server):
    redis_server.stop()
    got = Collect()
    inbox = Inbox(redis_client(redis_server.url), 'late', got)
    inbox.start()
    try:
        wait_until(lambda: inbox.reconnects >= 2, timeout=10, message='retries with backoff')
        assert inbox.running and not inbox.subscribed.is_set()
        redis_server.start()
        assert inbox.subscribed.wait(15)
        client = redis_client(redis_server.url)
        assert Sender(client, node_id()).send('late', b'hi') is True
        wait_until(lambda: got.payloads() == [b'hi'], timeout=5, message='the message')
        client.close()
    finally:
        inbox.stop()
    assert not inbox.running


def test_a_message_published_twice_is_delivered_once_and_garbage_is_dropped(redis_server):
    got = Collect()
    inbox = _inbox(redis_server, 'dup1', got)
    client = redis_client(redis_server.url)
    try:
        first = frame('SNDR', 99, 7, b'once')
        for data in (first, first, b'garbage', b'E2', frame('SNDR', 99, 6, b'older'),
                     frame('SNDR', 99, 8, b'next')):
            assert client.publish(channel('dup1'), data) == 1
        wait_until(lambda: inbox.dropped_malformed == 2 and len(got.payloads()) == 2,
                   timeout=5, message='every message handled')
        assert got.payloads() == [b'once', b'next']
        assert inbox.dropped_duplicate == 2
    finally:
        inbox.stop()
        client.close()


_SENDER_PROCESS = r'''
import os, sys
from engineio_wsgi.cluster.connect import redis_client
from engineio_wsgi.cluster.inbox import Sender
url, target, node, how = sys.argv[1:]
sender = Sender(redis_client(url), node)

def send(label, count):
    sent = [sender.send(target, f'{label} {i}'.encode()) for i in range(count)]
    assert sent == [True] * count, sent

if how == 'first':
    send('first', 3)
elif how == 'then':
    send('then', 4)
else:   # the same Sender, then in a forked child (gunicorn --preload)
    send('first', 3)
    pid = os.fork()
    if pid == 0:
        try:
            send('then', 4)
        finally:
            os._exit(0 if sys.exc_info()[0] is None else 1)
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
'''


def _senders(redis_server: RedisServer, *steps: str) -> None:
    for how in steps:
        out = subprocess.run([sys.executable, '-c', _SENDER_PROCESS, redis_server.url, 'dd01',
                              'SNDR', how], cwd=ROOT, env={**os.environ, 'PYTHONPATH': ROOT},
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr


@pytest.mark.parametrize('steps', [('first', 'then'), ('fork',)],
                         ids=['a new process', 'a forked child'])
def test_a_new_process_with_a_node_id_the_inbox_remembers_loses_nothing(redis_server, steps):
    # node ids are 24 bits: a new process (a restarted worker, an Emitter in a
    # cron job) may draw one an inbox remembers; here both processes are 'SNDR'
    got = Collect()
    inbox = _inbox(redis_server, 'dd01', got)
    client = redis_client(redis_server.url)
    try:
        _senders(redis_server, *steps)
        # the inbox handles one channel's messages in publish order: once this
        # one is in, every message before it was delivered or dropped
        assert Sender(client, node_id()).send('dd01', b'marker') is True
        wait_until(lambda: b'marker' in got.payloads(), timeout=5, message='the marker')
        assert got.payloads() == [b'first 0', b'first 1', b'first 2', b'then 0', b'then 1',
                                  b'then 2', b'then 3', b'marker']
        assert inbox.dropped_duplicate == 0
        assert [source for source, _ in got.messages] == ['SNDR'] * 7 + [node_id()]
    finally:
        inbox.stop()
        client.close()


@pytest.mark.timeout(60)
def test_a_redis_restart_loses_no_inbox_and_duplicates_nothing(redis_server):
    got = Collect()
    inbox = _inbox(redis_server, 'rst1', got)
    client = redis_client(redis_server.url)
    sender = Sender(client, node_id())
    try:
        before = [f'before {i}'.encode() for i in range(50)]
        for payload in before:
            assert sender.send('rst1', payload) is True
        wait_until(lambda: len(got.payloads()) == 50, timeout=10, message='the first 50')

        redis_server.stop()
        wait_until(lambda: not inbox.subscribed.is_set(), timeout=10,
                   message='the inbox noticed Redis is gone')
        # while Redis is away: a clear error, fast, never a hang
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(ClusterUnavailable):
                sender.send('rst1', b'lost')
            assert time.monotonic() - started < 3.0

        redis_server.start()
        assert inbox.subscribed.wait(15), 'the inbox did not come back'
        after = [f'after {i}'.encode() for i in range(50)]
        for payload in after:
            assert sender.send('rst1', payload) is True
        wait_until(lambda: len(got.payloads()) == 100, timeout=10, message='the next 50')
        assert got.payloads() == before + after
        assert inbox.reconnects >= 1 and inbox.running
    finally:
        stopped = time.monotonic()
        inbox.stop()
        client.close()
    assert not inbox.running and time.monotonic() - stopped < 5.0
