"""Cluster scenarios of the benchmarks: several worker processes sharing
sessions on Redis (``Server(cluster=...)``) behind nginx balancing round robin.

Run by harness.py (group ``cluster``: ``bench/run --scenarios cluster``). It
starts a redis-server and nginx of its own, on free loopback ports, with every
file in a temporary folder (Debian packages redis-server and nginx-light).
The servers are not pinned to a core here (the load generator stays on
CPU 1): the point is what a second worker process adds on a 2-core machine,
so compare the ratios of one run. Server CPU is that of gunicorn, nginx and
redis-server together.

Scenarios (each a record with ``server`` = the setup):

* ``cluster_poll_echo_50``, ``cluster_ws_echo_50``: loadgen.js echo, 50
  sessions, through nginx round robin in front of ``gunicorn -k gevent -w 1``
  without ``cluster=`` (server ``nginx-w1``: today's deployment) and of
  ``-w 2`` with ``cluster=`` (``nginx-w2-cluster``).
* ``cluster_latency`` (server ``cluster-2x1``: two one-worker gunicorns A and
  B, addressed directly): the round trip of one message over polling (POST,
  then the GET that returns the echo) with both requests on the owner A vs
  both on B (served for A through Redis); over WebSocket, upgraded on A vs on
  B (relayed); p50/p99 of each. ``Emitter.send`` to a WebSocket session of A:
  messages/s until the client has them all. Redis commands per forwarded
  request (``INFO commandstats``), less those of the same number of local
  requests (heartbeats and the like).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# the Emitter in this process: this checkout's code, as the servers run it
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))
SERVERS = BENCH / 'servers'
APP = 'eiowsgi_cluster_echo:app'
ECHO_SCENARIOS = [
    ('cluster_poll_echo_50', {'scenario': 'echo', 'transport': 'polling', 'sessions': 50}),
    ('cluster_ws_echo_50', {'scenario': 'echo', 'transport': 'websocket', 'sessions': 50}),
]
NAMES = [name for name, _ in ECHO_SCENARIOS] + ['cluster_latency']


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f'{what} did not come up within {timeout} s')


def _answers(port: int, request: bytes, prefix: bytes) -> bool:
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1) as sock:
            sock.settimeout(3)
            sock.sendall(request)
            return sock.recv(16).startswith(prefix)
    except OSError:
        return False


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


class Services:
    """redis-server, gunicorn instances and nginx in one temporary folder."""

    def __init__(self, logs: Path, tag: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix='eio-bench-cluster-'))
        self.logs = logs
        self.tag = tag
        self.procs: list[subprocess.Popen] = []
        logs.mkdir(parents=True, exist_ok=True)
        self.logfile = open(logs / f'{tag}.log', 'w')
        self.redis_port = 0

    def _spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                                stdout=self.logfile, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    @property
    def redis_url(self) -> str:
        return f'redis://127.0.0.1:{self.redis_port}/0'

    def redis(self) -> str:
        self.redis_port = free_port()
        binary = shutil.which('redis-server', path=os.environ.get('PATH', '') + ':/usr/sbin')
        if binary is None:
            raise RuntimeError('redis-server is missing (Debian package redis-server)')
        self._spawn([binary, '--port', str(self.redis_port), '--bind', '127.0.0.1', '--save', '',
                     '--appendonly', 'no', '--dir', str(self.dir), '--daemonize', 'no'])
        _wait(lambda: _answers(self.redis_port, b'PING\r\n', b'+PONG'), 10, 'redis-server')
        return self.redis_url

    def gunicorn(self, workers: int, cluster: bool) -> int:
        port = free_port()
        env = dict(os.environ, BENCH_PING_INTERVAL='25', BENCH_PING_TIMEOUT='20',
                   PYTHONUNBUFFERED='1')
        if cluster:
            env['BENCH_CLUSTER'] = self.redis_url
        gunicorn = Path(sys.executable).parent / 'gunicorn'
        self._spawn([str(gunicorn), '-k', 'gevent', '-w', str(workers), '-b', f'127.0.0.1:{port}',
                     '--chdir', str(SERVERS), '--backlog', '4096', '--worker-connections', '20000',
                     '--keep-alive', '30', '--timeout', '300', '--graceful-timeout', '2',
                     '--log-level', 'warning', APP], env)
        _wait(lambda: _answers(port, b'GET /ready HTTP/1.0\r\n\r\n', b'HTTP/1.'), 30,
              f'gunicorn -w {workers}')
        return port

    def nginx(self, backends: list[int]) -> int:
        port = free_port()
        binary = shutil.which('nginx', path=os.environ.get('PATH', '') + ':/usr/sbin')
        if binary is None:
            raise RuntimeError('nginx is missing (Debian package nginx-light)')
        user = ''
        if os.geteuid() == 0:       # root: keep the workers this user, not nobody
            import grp
            import pwd
            user = (f'user {pwd.getpwuid(os.geteuid()).pw_name} '
                    f'{grp.getgrgid(os.getegid()).gr_name};')
        servers = '\n'.join(f'        server 127.0.0.1:{p};' for p in backends)
        conf = self.dir / 'nginx.conf'
        conf.write_text(f"""daemon off;
{user}
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/nginx-error.log;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/cb; proxy_temp_path {self.dir}/px;
    fastcgi_temp_path {self.dir}/fc; uwsgi_temp_path {self.dir}/uw; scgi_temp_path {self.dir}/sc;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream backends {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 120s;
        }}
    }}
}}
""")
        self._spawn([binary, '-p', str(self.dir), '-c', str(conf), '-e',
                     str(self.dir / 'nginx-error.log')])
        _wait(lambda: _answers(port, b'GET /ready HTTP/1.0\r\n\r\n', b'HTTP/1.'), 10, 'nginx')
        return port

    def pids(self) -> list[int]:
        from harness import process_tree
        out: list[int] = []
        for proc in self.procs:
            out += process_tree(proc.pid)
        return out

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc, signal.SIGINT if 'gunicorn' in ' '.join(map(str, proc.args)) else
                  signal.SIGTERM)
        self.logfile.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class _Target:
    """What harness.run_loadgen needs of a server: a port, a log, CPU samples."""

    def __init__(self, port: int, services: Services, key: str) -> None:
        from harness import ServerSpec
        self.port = port
        self.services = services
        self.logfile = services.logfile
        self.spec = ServerSpec(key, key, 'gevent', 'gunicorn')

    def stats(self) -> dict[str, float]:
        from harness import tree_stats
        return tree_stats(self.services.pids())


# -- echo through nginx ---------------------------------------------------------------------

def echo_through_nginx(runner: Any, repeat: int) -> None:
    from harness import LOGS, cpu_between, run_loadgen
    for key, workers, cluster in (('nginx-w1', 1, False), ('nginx-w2-cluster', 2, True)):
        wanted = [(n, c) for n, c in ECHO_SCENARIOS if runner.wanted(n)]
        if not wanted:
            return
        services = Services(LOGS, f'{key}-{repeat}')
        try:
            if cluster:
                services.redis()
            backend = services.gunicorn(workers, cluster)
            target = _Target(services.nginx([backend]), services, key)
            run_loadgen({'scenario': 'warm'}, target, 30)
            for name, cfg in wanted:
                result = run_loadgen(dict(cfg, **runner.echo_time), target, 120)
                runner.record(target.spec, name, repeat, result, workers=workers,
                              cluster=cluster,
                              server_cpu=cpu_between(result['marks'], 'start', 'end'))
                time.sleep(0.3)
        finally:
            services.stop()


# -- latency, emitter rate, Redis round trips ------------------------------------------------

class Poller:
    """One polling session; each request on a keep-alive connection to ``port``."""

    def __init__(self, port: int) -> None:
        self.conns: dict[int, http.client.HTTPConnection] = {}
        body = self.request(port, 'GET', '')
        import json
        self.sid = json.loads(body.split('\x1e')[0][1:])['sid']

    def request(self, port: int, method: str, query: str, body: str | None = None) -> str:
        conn = self.conns.get(port)
        if conn is None:
            conn = self.conns[port] = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        target = '/engine.io/?EIO=4&transport=polling' + query
        headers = {'Content-Type': 'text/plain;charset=UTF-8'} if body is not None else {}
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        if resp.status != 200:
            raise RuntimeError(f'{method} {target}: {resp.status} {text[:100]}')
        return text

    def post(self, port: int, body: str) -> None:
        assert self.request(port, 'POST', f'&sid={self.sid}', body) == 'ok'

    def get(self, port: int) -> str:
        return self.request(port, 'GET', f'&sid={self.sid}')

    def round_trip(self, port: int) -> float:
        started = time.perf_counter()
        self.post(port, '4x')
        got = self.get(port)
        elapsed = time.perf_counter() - started
        if got != '4x':
            raise RuntimeError(f'expected the echo, got {got[:80]!r}')
        return elapsed

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


def _ws(url: str) -> Any:
    from websockets.sync.client import connect
    return connect(url, open_timeout=10, max_size=None, compression=None)


def upgraded(owner: int, via: int) -> tuple[Poller, Any]:
    """A session opened on ``owner`` over polling, upgraded on ``via``."""
    poller = Poller(owner)
    ws = _ws(f'ws://127.0.0.1:{via}/engine.io/?EIO=4&transport=websocket&sid={poller.sid}')
    ws.send('2probe')
    if ws.recv(timeout=10) != '3probe':
        raise RuntimeError('no probe answer')
    ws.send('5')
    return poller, ws


def ws_round_trip(ws: Any) -> float:
    started = time.perf_counter()
    ws.send('4x')
    while True:
        frame = ws.recv(timeout=10)
        if frame == '4x':
            return time.perf_counter() - started
        if frame == '2':
            ws.send('3')


def quantiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {'p50_ms': statistics.median(ordered) * 1000,
            'p99_ms': ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000}


def redis_calls(client: Any) -> int:
    stats = client.info('commandstats')
    return sum(int(v.get('calls', 0)) for k, v in stats.items() if k != 'cmdstat_info')


def latency(runner: Any, repeat: int) -> None:
    if not runner.wanted('cluster_latency'):
        return
    from harness import LOGS, ServerSpec

    from engineio_wsgi.cluster import Emitter
    from engineio_wsgi.cluster.connect import redis_client
    count = 200 if runner.quick else 2000
    services = Services(LOGS, f'cluster-2x1-latency-{repeat}')
    try:
        services.redis()
        a = services.gunicorn(1, True)
        b = services.gunicorn(1, True)
        redis = redis_client(services.redis_url)
        out: dict[str, Any] = {'messages': count}

        poller = Poller(a)
        for _ in range(20):
            poller.round_trip(a)
            poller.round_trip(b)
        local = [poller.round_trip(a) for _ in range(count)]
        before = redis_calls(redis)
        started = time.perf_counter()
        forwarded = [poller.round_trip(b) for _ in range(count)]
        forwarded_s = time.perf_counter() - started
        forwarded_calls = redis_calls(redis) - before
        before = redis_calls(redis)
        started = time.perf_counter()
        for _ in range(count):
            poller.round_trip(a)
        local_s = time.perf_counter() - started
        local_calls = redis_calls(redis) - before
        poller.close()
        out.update({f'poll_local_{k}': v for k, v in quantiles(local).items()})
        out.update({f'poll_forwarded_{k}': v for k, v in quantiles(forwarded).items()})
        # two requests per round trip; background commands at the local rate
        background = local_calls / local_s * forwarded_s
        out['redis_calls_per_forwarded_request'] = (forwarded_calls - background) / (2 * count)
        out['redis_calls_per_local_request'] = local_calls / (2 * count)

        for name, via in (('ws_local', a), ('ws_relayed', b)):
            try:
                session, ws = upgraded(a, via)
                for _ in range(20):
                    ws_round_trip(ws)
                out.update({f'{name}_{k}': v for k, v in
                            quantiles([ws_round_trip(ws) for _ in range(count)]).items()})
                ws.close()
                session.close()
            except Exception as exc:    # the other figures still count
                out[f'{name}_error'] = repr(exc)
                print(f'    {name} failed: {exc!r}', flush=True)

        session, ws = upgraded(a, a)
        emitter = Emitter(services.redis_url)
        total = count * 10
        received = [0]

        def take() -> None:
            while received[0] < total:
                frame = ws.recv(timeout=30)
                if frame == '2':
                    ws.send('3')
                elif frame.startswith('4'):
                    received[0] += 1
        reader = threading.Thread(target=take, daemon=True)
        reader.start()
        started = time.perf_counter()
        taken = sum(1 for i in range(total) if emitter.send(session.sid, f'e{i}'))
        reader.join(60)
        elapsed = time.perf_counter() - started
        out['emitter_sends'] = taken
        out['emitter_received'] = received[0]
        out['emitter_rate'] = received[0] / elapsed
        ws.close()
        session.close()
        result = dict(out, rate=out['emitter_rate'], p50_ms=out['poll_forwarded_p50_ms'],
                      p99_ms=out['poll_forwarded_p99_ms'])
        runner.record(ServerSpec('cluster-2x1', 'two gunicorn -w 1 with cluster=', 'gevent',
                                 'gunicorn'), 'cluster_latency', repeat, result)
        for key in sorted(out):
            value = out[key]
            print(f'    {key}: {value:.4g}' if isinstance(value, float) else f'    {key}: {value}',
                  flush=True)
    finally:
        services.stop()


def run(runner: Any, repeat: int) -> None:
    for part in (echo_through_nginx, latency):
        try:
            part(runner, repeat)
        except Exception as exc:     # one failed setup must not end the run
            print(f'  {part.__name__} failed: {exc!r}', flush=True)
            runner.records.append({'server': 'cluster', 'label': 'cluster',
                                   'scenario': part.__name__, 'repeat': repeat,
                                   'error': repr(exc)})
