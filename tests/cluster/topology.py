"""A whole cluster for end-to-end tests: one redis-server, gunicorn processes
running an application with ``cluster=`` on it, and one nginx balancing every
request round robin over them (no stickiness).

Two layouts, as deployments have them:

* ``three-servers``: two ``gunicorn -k gevent -w 1`` and one
  ``gunicorn -k gthread -w 1``, each on its own port, all three behind nginx;
* ``one-port``: one ``gunicorn -k gevent -w 3`` (the kernel spreads the
  connections nginx opens, one per request, over the three workers).

Tests share one cluster per module (starting one takes a few seconds).
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from tests.cluster.services import Nginx, RedisServer, temp_dir
from tests.integration.gunicorn_runner import Gunicorn, start_gunicorn
from tests.live import http_request, wait_until

GEVENT = ['-k', 'gevent']
GTHREAD = ['-k', 'gthread', '--threads', '20']

#: layout name -> one (worker arguments, worker count) per gunicorn instance
LAYOUTS: dict[str, list[tuple[list[str], int]]] = {
    'three-servers': [(GEVENT, 1), (GEVENT, 1), (GTHREAD, 1)],
    'one-port': [(GEVENT, 3)],
}
#: heartbeat of the test clusters: a dead client is noticed in 4 s
PING = {'EIO_PING_INTERVAL': '2', 'EIO_PING_TIMEOUT': '2'}
BOOTED = re.compile(r'Booting worker with pid: (\d+)')


@dataclass
class Cluster:
    layout: str
    redis: RedisServer
    servers: list[Gunicorn]
    front: Nginx
    #: node id -> (gunicorn instance, worker pid), filled in by ``discover``
    nodes: dict[str, tuple[Gunicorn, int]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.front.port}'

    @property
    def ws_url(self) -> str:
        return f'ws://127.0.0.1:{self.front.port}'

    @property
    def processes(self) -> int:
        return sum(count for _, count in LAYOUTS[self.layout])

    def log(self) -> str:
        return '\n'.join(f'--- gunicorn on port {s.port} ---\n{s.text()}' for s in self.servers)

    def diagnostics(self) -> str:
        return (f'{self.log()[-6000:]}\n--- nginx ---\n{self.front.error_log()[-2000:]}\n'
                f'--- redis ---\n{self.redis.log()[-1000:]}')

    def workers(self, server: Gunicorn) -> list[int]:
        """Pids of the live worker processes of one gunicorn instance (from its log)."""
        pids = [int(pid) for pid in BOOTED.findall(server.text())]
        return [pid for pid in pids if _alive(pid)]

    def node_of(self, port: int) -> str:
        resp = http_request(port, 'GET', '/__node', timeout=5)
        assert resp.status == 200, resp
        return resp.body.decode()

    def discover(self, timeout: float = 30.0) -> dict[str, tuple[Gunicorn, int]]:
        """Every process's node id, asked through its own port until all answered."""
        found: dict[str, Gunicorn] = {}

        def all_seen() -> bool:
            for server in self.servers:
                if server.proc.poll() is not None:
                    pytest.fail(f'gunicorn on port {server.port} exited:\n{server.text()[-4000:]}')
                try:
                    found[self.node_of(server.port)] = server
                except OSError:
                    return False
            return len(found) == self.processes
        wait_until(all_seen, timeout, interval=0.0,
                   message=f'all {self.processes} processes answering /__node')
        self.nodes = {}
        for node, server in found.items():
            pids = self.workers(server)
            self.nodes[node] = (server, pids[0] if len(pids) == 1 else 0)
        return self.nodes


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as f:
            return f.read().split(') ', 1)[1][0] != 'Z'
    except (OSError, IndexError):
        return False


def start_cluster(layout: str, app: str = 'tests.apps.cluster_echo:app',
                  env: Mapping[str, str] | None = None, extra: Sequence[str] = ()) -> Cluster:
    directory = temp_dir('eio-cluster-redis-')
    redis = RedisServer(directory)
    redis.start()
    servers: list[Gunicorn] = []
    try:
        # REDIS_URL: what examples/cluster/app.py reads
        child_env = {**PING, 'EIO_CLUSTER': redis.url, 'REDIS_URL': redis.url, **(env or {})}
        for worker_args, count in LAYOUTS[layout]:
            servers.append(start_gunicorn(worker_args, app, child_env,
                                          extra=['-w', str(count), *extra]))
        # one port: no idle upstream connections, else a client's requests in
        # turn reuse one connection, and so one worker
        front = Nginx(temp_dir('eio-cluster-nginx-'), [s.port for s in servers],
                      keepalive=16 if len(servers) > 1 else 0)
        front.start()
    except BaseException:
        for server in servers:
            server.kill()
        redis.kill()
        raise
    return Cluster(layout, redis, servers, front)


def stop_cluster(cluster: Cluster) -> None:
    cluster.front.stop()
    for server in cluster.servers:
        server.kill()
    cluster.redis.kill()
    shutil.rmtree(cluster.front.directory, ignore_errors=True)
    shutil.rmtree(cluster.redis.directory, ignore_errors=True)


@contextlib.contextmanager
def running_cluster(layout: str, app: str = 'tests.apps.cluster_echo:app',
                    env: Mapping[str, str] | None = None, extra: Sequence[str] = (),
                    discover: bool = True) -> Iterator[Cluster]:
    """``discover``: learn every process's node id from its ``/__node`` route
    (the test apps have it)."""
    cluster = start_cluster(layout, app, env, extra)
    try:
        if discover:
            cluster.discover()
        yield cluster
    finally:
        stop_cluster(cluster)


def owner(sid: str) -> str:
    """The node id a sid names (its process tag)."""
    from engineio_wsgi.cluster.node import owner_of
    node = owner_of(sid)
    assert node is not None, f'{sid!r} is not a sid of this server'
    return node


def no_tracebacks(cluster: Cluster) -> None:
    """No traceback, no dead gunicorn, and no warning that the processes do not
    share sessions (they do)."""
    log = cluster.log()
    assert 'Traceback' not in log, cluster.diagnostics()
    assert 'several processes serve this Engine.IO application' not in log, cluster.diagnostics()
    for server in cluster.servers:
        assert server.proc.poll() is None, f'gunicorn on {server.port} exited\n{cluster.diagnostics()}'
