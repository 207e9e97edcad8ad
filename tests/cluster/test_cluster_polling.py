"""Long-polling sessions across processes (``Server(cluster=...)``): real
redis-server, real gunicorn processes (each ``-w 1``); the tests pick which
process gets each request, so every rule is checked on a request that one
process serves for another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from engineio_wsgi.cluster.connect import redis_client
from engineio_wsgi.cluster.inbox import channel
from engineio_wsgi.cluster.link import FORWARD_TIMEOUT
from tests.live import (
    CLOSE,
    MESSAGE,
    NOOP,
    PING,
    ROOT,
    Background,
    Packet,
    PollingClient,
    RawRequest,
    expect_error,
    http_request,
    wait_until,
)

GEVENT = ['-k', 'gevent']


def node(port: int) -> str:
    resp = http_request(port, 'GET', '/__node')
    assert resp.status == 200, resp
    return resp.text


def sessions(port: int) -> int:
    return int(http_request(port, 'GET', '/__sessions').text)


def state(port: int, sid: str) -> dict:
    resp = http_request(port, 'GET', f'/__session?sid={sid}')
    assert resp.status == 200, resp
    return resp.json()


def wait_gone(redis_server, node_id: str) -> None:
    """Until Redis dropped the subscription of a killed process's inbox."""
    client = redis_client(redis_server.url)
    try:
        wait_until(lambda: client.pubsub_numsub(channel(node_id))[0][1] == 0, 5.0,
                   message=f'Redis dropped node {node_id}')
    finally:
        client.close()


def held_by_owner(request, timeout: float | None, owner_port: int, sid: str) -> Background:
    """``request`` (a GET sent through a process that does not own the
    session) in the background, once the owner reports that it holds it."""
    pending = Background(request, timeout)
    wait_until(lambda: state(owner_port, sid)['get_waiting'], 5.0,
               message='the owner holds the forwarded GET')
    return pending


def on(port: int, client: PollingClient) -> PollingClient:
    """The same session, its requests sent to the process on ``port``."""
    other = PollingClient(port)
    other.sid = client.sid
    return other


@pytest.fixture
def pair(redis_server, gunicorns):
    """Two one-process gunicorns sharing sessions over the test's Redis."""
    env = {'EIO_CLUSTER': redis_server.url, 'EIO_PING_INTERVAL': '5', 'EIO_PING_TIMEOUT': '5'}
    a, b = gunicorns(2, GEVENT, app='tests.apps.cluster_echo:app', env=env)
    return a, b


def test_post_and_get_served_by_another_process(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    assert owner.sid.startswith(node(a.port))
    other = on(b.port, owner)
    other.post_ok(Packet.message('one'), Packet.message('two'), Packet.message(b'\x00\x01'))
    other.send('whoami')
    assert other.receive(4) == ['one', 'two', b'\x00\x01', node(a.port)]
    assert sessions(a.port) == 1 and sessions(b.port) == 0


def test_get_forwarded_waits_for_the_owners_packets_in_order(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    waiting = held_by_owner(on(b.port, owner).poll, 10.0, a.port, owner.sid)
    on(a.port, owner).send(*[f'm{i}' for i in range(5)])
    packets = waiting.result(10.0)
    assert [p.data for p in packets if p.type == MESSAGE] == [f'm{i}' for i in range(5)]


def test_duplicate_get_across_processes_closes_the_session(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    first = held_by_owner(on(b.port, owner).poll, 10.0, a.port, owner.sid)
    second = on(a.port, owner).get()
    expect_error(second, 400, 3)
    assert [p.type for p in first.result(5.0)] == [CLOSE]
    expect_error(on(b.port, owner).get(), 400, 1)


def test_client_close_through_another_process_ends_a_get_waiting_there(pair):
    """The close packet, forwarded like the GET waiting on the owner for
    another process: that GET gets a noop, then the sid is unknown everywhere."""
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    waiting = held_by_owner(on(b.port, owner).get, 10.0, a.port, owner.sid)
    on(b.port, owner).post_ok(Packet(CLOSE))
    resp = waiting.result(5.0)
    assert resp.status == 200 and resp.body == NOOP.encode(), resp
    for port in (a.port, b.port):
        expect_error(on(port, owner).get(), 400, 1)


def test_polling_heartbeat_through_another_process(redis_server, gunicorns):
    """Pings fetched and pongs posted through a process that does not own the
    session keep it alive; without a pong the owner's timeout ends it, and the
    GET waiting through the other process gets the close packet."""
    env = {'EIO_CLUSTER': redis_server.url, 'EIO_PING_INTERVAL': '0.5',
           'EIO_PING_TIMEOUT': '1.5'}
    a, b = gunicorns(2, GEVENT, app='tests.apps.cluster_echo:app', env=env)
    owner = PollingClient(a.port)
    owner.handshake()
    other = on(b.port, owner)
    for _ in range(3):
        assert other.poll(timeout=5.0) == [Packet(PING)]
        other.pong()
    assert state(a.port, owner.sid)['exists']
    assert other.poll(timeout=5.0) == [Packet(PING)]
    assert other.poll(timeout=5.0) == [Packet(CLOSE)]      # no pong: the timeout's close
    for port in (a.port, b.port):
        expect_error(on(port, owner).get(), 400, 1)


def test_bad_post_through_another_process_ends_the_session_at_once(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    other = on(b.port, owner)
    expect_error(other.post(body=b'4ok\x1e9bad'), 400, 3)
    # gone at once (PROTOCOL.md): the next GET is refused, on either process
    expect_error(other.get(), 400, 1)
    expect_error(on(a.port, owner).get(), 400, 1)


def test_bad_post_a_get_waiting_elsewhere_gets_the_reply_then_the_close(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    waiting = held_by_owner(on(b.port, owner).poll, 10.0, a.port, owner.sid)
    expect_error(on(b.port, owner).post(body=b'4ok\x1e9bad'), 400, 3)
    # the packet before the bad one reached the application; its echo, then 1
    packets = waiting.result(10.0)
    assert [(p.type, p.data) for p in packets] == [(MESSAGE, 'ok'), (CLOSE, '')]
    expect_error(on(a.port, owner).get(), 400, 1)


def test_post_over_max_payload_is_413_and_closes(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    expect_error(on(b.port, owner).post(body=b'4' + b'x' * 1_000_001), 413, 3)
    wait_until(lambda: sessions(a.port) == 0, 5.0, message='session closed on its owner')


def test_owner_killed_requests_elsewhere_get_unknown_sid_within_a_second(pair, redis_server):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    owner_node = node(a.port)
    waiting = held_by_owner(on(b.port, owner).get, None, a.port, owner.sid)
    os.killpg(a.proc.pid, signal.SIGKILL)
    started = time.monotonic()
    # at once if Redis saw the owner go, else when it does not acknowledge (FORWARD_TIMEOUT)
    expect_error(on(b.port, owner).post(Packet.message('x')), 400, 1)
    assert time.monotonic() - started < FORWARD_TIMEOUT + 0.5
    # the GET that waited on the owner learns it within the liveness check's period
    expect_error(waiting.result(5.0), 400, 1)
    assert waiting.finished_at - started < 2 * FORWARD_TIMEOUT + 0.5
    wait_gone(redis_server, owner_node)
    asked = time.monotonic()
    expect_error(on(b.port, owner).get(), 400, 1)
    assert time.monotonic() - asked < 0.5   # PUBLISH reached nobody: no wait at all
    # send() and disconnect() for its sessions are ignored (logged at DEBUG), not errors
    assert http_request(b.port, 'GET', f'/__send?sid={owner.sid}&data=x').text == 'done'
    assert http_request(b.port, 'GET', f'/__disconnect?sid={owner.sid}').text == 'done'
    # the surviving process serves its own sessions as before
    mine = PollingClient(b.port)
    mine.handshake()
    mine.send('still here')
    assert mine.receive(1) == ['still here']


def test_send_and_disconnect_from_a_process_that_does_not_own_the_session(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    for i in range(20):
        assert http_request(b.port, 'GET', f'/__send?sid={owner.sid}&data=s{i}').text == 'done'
    assert owner.receive(20) == [f's{i}' for i in range(20)]
    assert http_request(b.port, 'GET', f'/__disconnect?sid={owner.sid}').text == 'done'
    assert [p.type for p in owner.poll()] == [CLOSE]
    expect_error(owner.get(), 400, 1)


def test_emitter_from_a_plain_process(pair, redis_server):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    code = f'''
from engineio_wsgi.cluster import Emitter
emitter = Emitter({redis_server.url!r})
results = [emitter.send({owner.sid!r}, f'e{{i}}') for i in range(50)]
results.append(emitter.send({owner.sid!r}, b'\\x00bin'))
results.append(emitter.disconnect({owner.sid!r}))
results.append(emitter.send('AAAA' + {owner.sid!r}[4:], 'to a node that never was'))
print(results)
'''
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         timeout=30, env={**os.environ, 'PYTHONPATH': ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([True] * 52 + [False])
    messages = []
    while True:
        packets = owner.poll()
        messages += [p.data for p in packets if p.type == MESSAGE]
        if packets[-1].type == CLOSE:
            break
    assert messages == [f'e{i}' for i in range(50)] + [b'\x00bin']
    expect_error(owner.get(), 400, 1)


def test_redis_down_local_sessions_work_forwarded_requests_fail_fast_then_resume(
        pair, redis_server):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    nodes = [node(a.port), node(b.port)]
    on(b.port, owner).send('before')
    assert owner.receive(1) == ['before']
    redis_server.stop()
    # the session's own process serves it as before
    owner.send('local')
    assert owner.receive(1) == ['local']
    # a request for it on the other process fails fast with 503
    started = time.monotonic()
    expect_error(on(b.port, owner).post(Packet.message('lost')), 503, 3)
    expect_error(on(b.port, owner).get(), 503, 3)
    assert time.monotonic() - started < 1.0
    assert http_request(b.port, 'GET', f'/__send?sid={owner.sid}&data=x').text == 'unavailable'
    # no new polling session meanwhile: the other process could not reach it
    # (tests/cluster/test_redis_at_start.py)
    expect_error(http_request(b.port, 'GET', '/engine.io/?EIO=4&transport=polling'), 503, 3)
    redis_server.start()
    client = redis_client(redis_server.url)
    try:
        wait_until(lambda: all(n == 1 for _, n in client.pubsub_numsub(
            *[channel(n) for n in nodes])), 10.0, message='both inboxes listen again')
    finally:
        client.close()
    on(b.port, owner).send('back', 'again')
    assert owner.receive(2) == ['back', 'again']
    # nothing delivered twice: the next poll holds only what is sent now
    owner.send('last')
    assert owner.receive(1) == ['last']
    assert a.proc.poll() is None and b.proc.poll() is None


def test_threaded_workers_serve_for_each_other(redis_server, gunicorns):
    env = {'EIO_CLUSTER': redis_server.url}
    a, b = gunicorns(2, ['-k', 'gthread', '--threads', '20'],
                     app='tests.apps.cluster_echo:app', env=env)
    owner = PollingClient(a.port)
    owner.handshake()
    waiting = held_by_owner(on(b.port, owner).poll, 10.0, a.port, owner.sid)
    on(a.port, owner).send('to the waiting GET')
    assert [(p.type, p.data) for p in waiting.result(5.0)] == [(MESSAGE, 'to the waiting GET')]
    on(b.port, owner).send('whoami', 'x')
    assert on(b.port, owner).receive(2) == [node(a.port), 'x']
    assert http_request(b.port, 'GET', f'/__send?sid={owner.sid}&data=y').text == 'done'
    assert owner.receive(1) == ['y']


def test_cluster_option_of_socketio_server_and_bad_values():
    from engineio_wsgi.cluster.connect import ClusterConfigError
    from engineio_wsgi.cluster.link import ClusterLink
    from engineio_wsgi.server import Server
    from engineio_wsgi.socketio import Server as SocketIOServer
    assert isinstance(SocketIOServer(cluster='redis://127.0.0.1:1/0').eio._cluster, ClusterLink)
    for bad in ('http://127.0.0.1:6379/', 42):
        with pytest.raises(ClusterConfigError):
            Server(cluster=bad)


def test_process_serving_a_get_killed_nothing_lost_and_the_next_get_takes_over(
        pair, redis_server):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    b_node = node(b.port)
    held_by_owner(on(b.port, owner).get, 10.0, a.port, owner.sid)
    os.killpg(b.proc.pid, signal.SIGKILL)
    wait_gone(redis_server, b_node)
    # the client's next GET, on the owner: not a duplicate of the GET of the dead process
    waiting = Background(owner.poll, 10.0)
    on(a.port, owner).send('after', 'the kill')
    messages = [p.data for p in waiting.result(10.0) if p.type == MESSAGE]
    while len(messages) < 2:
        messages += [p.data for p in owner.poll() if p.type == MESSAGE]
    assert messages == ['after', 'the kill']


def test_message_for_a_get_whose_process_stopped_listening_is_not_lost(pair, redis_server):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    b_node = node(b.port)
    held_by_owner(on(b.port, owner).get, 10.0, a.port, owner.sid)
    # b stops (it cannot subscribe again) and its inbox's connection is cut: the
    # owner does not drain for it (b does not listen), or puts back what it
    # drained when its answer reaches nobody; either way the next GET gets it
    os.killpg(b.proc.pid, signal.SIGSTOP)
    try:
        client = redis_client(redis_server.url)
        try:
            for entry in client.client_list(_type='pubsub'):
                client.client_kill_filter(_id=entry['id'])
            wait_until(lambda: client.pubsub_numsub(channel(b_node))[0][1] == 0, 5.0,
                       message='b no longer listens')
        finally:
            client.close()
        on(a.port, owner).send('kept')
        wait_until(lambda: state(a.port, owner.sid)['queued'] == 1, 5.0,
                   message='the message in the queue')
        received: list = []
        while not received:
            received = [p.data for p in owner.poll() if p.type == MESSAGE]
        assert received == ['kept']
    finally:
        os.killpg(b.proc.pid, signal.SIGCONT)


def test_workers_of_one_gunicorn_share_sessions_and_subscribe_after_fork(redis_server, gunicorns):
    # --preload: the master imports the application (and builds the Server);
    # only the workers, at their first request, listen on Redis
    (server,) = gunicorns(1, GEVENT, app='tests.apps.cluster_echo:app',
                          env={'EIO_CLUSTER': redis_server.url},
                          extra=['-w', '3', '--preload'])
    client = redis_client(redis_server.url)
    try:
        assert client.pubsub_channels('engineio_wsgi#*') == []
        clients = [PollingClient(server.port) for _ in range(12)]
        for c in clients:
            c.handshake()
        for i, c in enumerate(clients):
            c.send(f'c{i}', 'whoami')
        for i, c in enumerate(clients):
            assert c.receive(2) == [f'c{i}', c.sid[:4]]
        tags = {c.sid[:4] for c in clients}
        listening = {name.decode().split('#')[1]
                     for name in client.pubsub_channels('engineio_wsgi#*')}
        # every process that issued a sid listens, and no other (not the master)
        assert tags <= listening and len(listening) <= 3
    finally:
        client.close()


def test_binary_post_refused_by_the_serving_process_closes_the_session(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    resp = on(b.port, owner).post(body=b'4x', headers=[('Content-Type',
                                                         'application/octet-stream')])
    expect_error(resp, 400, 3)
    wait_until(lambda: sessions(a.port) == 0, 5.0, message='session closed on its owner')
    expect_error(owner.get(), 400, 1)


def test_a_slow_handler_delays_only_its_own_session(redis_server, gunicorns):
    # handlers on the I/O path (async_handlers=False, as python-socketio runs them)
    a, b = gunicorns(2, GEVENT, app='tests.apps.cluster_blocking:app',
                     env={'EIO_CLUSTER': redis_server.url})
    slow, quick = PollingClient(a.port), PollingClient(a.port)
    slow.handshake()
    quick.handshake()
    blocked = Background(on(b.port, slow).post_ok, Packet.message('block 2'))
    wait_until(lambda: f'blocking {slow.sid}' in a.text(), 5.0, message='handler blocking')
    # while the owner runs the slow handler, another session's POST through b is served
    started = time.monotonic()
    on(b.port, quick).send('quick')
    assert time.monotonic() - started < FORWARD_TIMEOUT
    assert quick.receive(1) == ['quick']
    # the slow POST is answered ok once its handler returned, not refused after a second
    blocked.result(10.0)
    assert slow.receive(1) == ['unblocked']


def test_duplicate_post_across_processes_closes_the_session(pair):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    headers = {'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': '40'}
    # a POST through b still receiving its body holds the owner's POST slot
    with RawRequest(b.port, 'POST', owner.target(), headers, body_start=b'4slow', timeout=10):
        wait_until(lambda: state(a.port, owner.sid)['post_active'], 5.0,
                   message='the owner holds the POST slot for b')
        expect_error(owner.post(Packet.message('second')), 400, 3)
        wait_until(lambda: sessions(a.port) == 0, 5.0, message='session closed on its owner')
    # and the other way round: the owner's own POST in progress, a second through b
    other = PollingClient(a.port)
    other.handshake()
    with RawRequest(a.port, 'POST', other.target(), headers, body_start=b'4slow', timeout=10):
        wait_until(lambda: state(a.port, other.sid)['post_active'], 5.0,
                   message='the owner reads its own POST')
        expect_error(on(b.port, other).post(Packet.message('second')), 400, 3)
        wait_until(lambda: sessions(a.port) == 0, 5.0, message='session closed on its owner')


def test_a_node_id_drawn_twice_is_reported(redis_server, caplog):
    from engineio_wsgi.cluster.node import node_id
    from engineio_wsgi.server import Server
    twin = redis_client(redis_server.url)
    pubsub = twin.pubsub()
    pubsub.subscribe(channel(node_id()))   # another process listening as this node
    server = Server(cluster=redis_server.url, async_mode='threading')
    link = server._cluster
    try:
        with caplog.at_level('ERROR', logger='engineio_wsgi.cluster.link'):
            link.start()
        assert [r.getMessage() for r in caplog.records if r.levelname == 'ERROR'] == [
            f'cluster node id {node_id()} is used by another process too: requests for '
            'their sessions may go astray; restart this process']
    finally:
        link.inbox.stop()
        pubsub.close()
        twin.close()


def test_post_body_that_never_comes_through_another_process(redis_server, gunicorns):
    env = {'EIO_CLUSTER': redis_server.url, 'EIO_HTTP_BODY_TIMEOUT': '1'}
    a, b = gunicorns(2, GEVENT, app='tests.apps.cluster_echo:app', env=env)
    owner = PollingClient(a.port)
    owner.handshake()
    headers = {'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': '40'}
    with RawRequest(b.port, 'POST', owner.target(), headers, body_start=b'4slow',
                    timeout=10) as slow:
        expect_error(slow.response(), 400, 3)
        assert time.monotonic() - slow.started < 3.0
    wait_until(lambda: sessions(a.port) == 0, 5.0, message='session closed on its owner')
    expect_error(owner.get(), 400, 1)


def test_redis_hanging_forwarded_requests_fail_fast_local_sessions_work(pair, redis_server):
    a, b = pair
    owner = PollingClient(a.port)
    owner.handshake()
    on(b.port, owner).send('before')
    assert owner.receive(1) == ['before']
    os.kill(redis_server.proc.pid, signal.SIGSTOP)   # connections stay open, nothing answers
    try:
        started = time.monotonic()
        expect_error(on(b.port, owner).post(Packet.message('lost')), 503, 3)
        assert time.monotonic() - started < 2 * FORWARD_TIMEOUT + 1.0
        owner.send('local')
        assert owner.receive(1) == ['local']
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    # a client told 503 gives its session up; new sessions are served across
    # processes again once Redis answers
    fresh = PollingClient(a.port)
    fresh.handshake()
    on(b.port, fresh).send('back')
    assert fresh.receive(1) == ['back']


def test_unpatched_gevent_server_is_told_cluster_needs_monkey_patching(redis_server):
    from tests.live import NOPATCH, start_server
    with start_server(NOPATCH, 'tests.apps.cluster_echo:app',
                      env={'EIO_CLUSTER': redis_server.url}) as server:
        PollingClient(server.port).handshake()
        assert server.wait_for_log('cluster= under gevent needs the standard library '
                                   'monkey-patched', 5.0), server.log_tail()
