"""Run the benchmark scenarios against every server and save the raw results.

Two families share one run: Engine.IO echo servers (``loadgen.js``) and
Socket.IO servers (python-socketio on engineio_wsgi, on python-engineio, and
Node's socket.io 4; ``sio_loadgen.js``).

Started by ``bench/run`` inside ``bench/.venv``; see the README's "Benchmarks"
section. Each server runs pinned to CPU 0, the Node load generator to CPU 1.
Writes ``results/results.json``, then calls ``report.py`` for the table and chart.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cluster

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / 'results'
LOGS = RESULTS / 'logs'
VENV_BIN = Path(sys.executable).parent
SERVER_CPU = '0'
LOADGEN_CPU = '1'
TICK = os.sysconf('SC_CLK_TCK')


@dataclass
class ServerSpec:
    key: str
    label: str
    mode: str                    # 'gevent' or 'threading' (Node: 'node')
    kind: str                    # 'gunicorn' or 'node'
    module: str = ''             # gunicorn: the app; node: the script in servers/
    protocol: str = 'eio'        # 'eio' (Engine.IO echo) or 'sio' (Socket.IO)
    threads: int = 0             # gthread only
    idle_sizes: list[int] = field(default_factory=list)
    #: gthread: also hold FEW_THREADS_IDLE WebSockets on a worker of few threads
    few_threads_idle: bool = False


def server_specs(quick: bool) -> list[ServerSpec]:
    full_idle = [1000] if quick else [1000, 5000]
    return [
        ServerSpec('eiowsgi-gevent', 'engineio_wsgi (gevent)', 'gevent', 'gunicorn',
                   'eiowsgi_echo:app', idle_sizes=full_idle + ([] if quick else [10000])),
        ServerSpec('pyeio-gevent', 'python-engineio (gevent)', 'gevent', 'gunicorn',
                   'pyeio_echo:app', idle_sizes=full_idle),
        ServerSpec('node', 'Node engine.io 6', 'node', 'node', 'node_server.js',
                   idle_sizes=full_idle),
        ServerSpec('eiowsgi-gthread', 'engineio_wsgi (gthread)', 'threading', 'gunicorn',
                   'eiowsgi_echo:app', threads=200, idle_sizes=[] if quick else [1000],
                   few_threads_idle=True),
        ServerSpec('pyeio-gthread', 'python-engineio (gthread)', 'threading', 'gunicorn',
                   'pyeio_echo:app', threads=200, idle_sizes=[] if quick else [1000]),
        ServerSpec('sio-eiowsgi-gevent', 'python-socketio on engineio_wsgi (gevent)', 'gevent',
                   'gunicorn', 'sio_eiowsgi:app', protocol='sio'),
        ServerSpec('sio-pyeio-gevent', 'python-socketio on python-engineio (gevent)', 'gevent',
                   'gunicorn', 'sio_pyeio:app', protocol='sio'),
        ServerSpec('sio-node', 'Node socket.io 4', 'node', 'node', 'node_sio_server.js',
                   protocol='sio'),
        ServerSpec('sio-eiowsgi-gthread', 'python-socketio on engineio_wsgi (gthread)',
                   'threading', 'gunicorn', 'sio_eiowsgi:app', threads=200, protocol='sio'),
        ServerSpec('sio-pyeio-gthread', 'python-socketio on python-engineio (gthread)',
                   'threading', 'gunicorn', 'sio_pyeio:app', threads=200, protocol='sio'),
    ]

#: Engine.IO scenarios: (name, loadgen.js configuration)
EIO_TRAFFIC = [
    ('handshakes', {'scenario': 'handshakes', 'concurrency': 20}),
    ('ws_echo_1', {'scenario': 'echo', 'transport': 'websocket', 'sessions': 1}),
    ('ws_echo_50', {'scenario': 'echo', 'transport': 'websocket', 'sessions': 50}),
    ('poll_echo_1', {'scenario': 'echo', 'transport': 'polling', 'sessions': 1}),
    ('poll_echo_50', {'scenario': 'echo', 'transport': 'polling', 'sessions': 50}),
]
#: Socket.IO scenarios: (name, sio_loadgen.js configuration)
SIO_TRAFFIC = [
    ('sio_connects', {'scenario': 'connects', 'concurrency': 20}),
    ('sio_ack_ws_1', {'scenario': 'ack', 'transport': 'websocket', 'sessions': 1}),
    ('sio_ack_ws_50', {'scenario': 'ack', 'transport': 'websocket', 'sessions': 50}),
    # socket.io-client's default options, as browsers too: permessage-deflate offered
    ('sio_ack_ws_50_defaults', {'scenario': 'ack', 'transport': 'websocket', 'sessions': 50,
                                'defaults': True}),
    ('sio_ack_poll_1', {'scenario': 'ack', 'transport': 'polling', 'sessions': 1}),
    ('sio_ack_poll_50', {'scenario': 'ack', 'transport': 'polling', 'sessions': 50}),
]
SIO_ROOM_SIZE = 1000
#: polling handshakes whose sessions the clients leave open (until their ping
#: timeout), on a server of its own with the short ping of the idle runs; at most
#: this many per run (quick, full)
UNCLOSED_HANDSHAKES = (5000, 10000)
#: idle WebSockets on one gthread worker, held for this many ping intervals of
#: GTHREAD_IDLE_PING seconds (quick, full)
GTHREAD_IDLE_SIZE = 5000
GTHREAD_IDLE_PING = (5, 5)
GTHREAD_IDLE_INTERVALS = (2, 3)
#: idle WebSockets on one gthread worker with few threads (sessions, --threads),
#: held for FEW_THREADS_INTERVALS ping intervals of GTHREAD_IDLE_PING seconds
#: (for a server whose WebSockets hold no thread)
FEW_THREADS_IDLE = (10000, 32)
FEW_THREADS_INTERVALS = 4
#: WebSocket clients that each ask for STUCK_OWED bytes and stop reading, next
#: to one healthy client (quick, full), and the servers they run on
STUCK_READERS = (50, 1000)
STUCK_OWED = 1_000_000
STUCK_SERVERS = ('eiowsgi-gevent', 'eiowsgi-gthread', 'pyeio-gevent', 'pyeio-gthread', 'node')
#: engineio_wsgi's WebSocket close timeout (rfc6455): a close frame the client
#: does not answer within it ends the connection
CLOSE_TIMEOUT = 3
#: the same in Node's ws (closeTimeout), which engine.io 6 keeps
NODE_CLOSE_TIMEOUT = 30
#: WebSocket sessions whose ping timeouts come due together (quick, full)
PING_WAVE = (300, 5000)
PING_WAVE_SERVERS = STUCK_SERVERS


# -- /proc ------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f'/proc/{pid}/task').glob('*'):
        try:
            kids += [int(x) for x in (task / 'children').read_text().split()]
        except OSError:
            pass
    return kids


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def tree_stats(pids: list[int]) -> dict[str, float]:
    """Resident memory (KiB) and CPU seconds used so far, summed over ``pids``."""
    rss = 0
    cpu = 0.0
    threads = 0
    for pid in pids:
        try:
            for line in Path(f'/proc/{pid}/status').read_text().splitlines():
                if line.startswith('VmRSS:'):
                    rss += int(line.split()[1])
                elif line.startswith('Threads:'):
                    threads += int(line.split()[1])
            stat = Path(f'/proc/{pid}/stat').read_text()
            fields = stat[stat.rindex(')') + 2:].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, ValueError, IndexError):
            pass
    return {'rss_kib': rss, 'cpu_s': cpu, 'threads': threads,
            'core_busy_s': core_busy(SERVER_CPU), 't': time.monotonic()}


def core_busy(core: str) -> float:
    """CPU seconds this core spent on anything (all processes) since boot."""
    for line in Path('/proc/stat').read_text().splitlines():
        if line.startswith(f'cpu{core} '):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]          # idle + iowait
            return (sum(v[:8]) - idle) / TICK
    return 0.0


class Sampler:
    """Threads and resident memory of one process, read from /proc every
    ``interval`` seconds on a thread of its own: the peaks of a burst, which the
    marks alone would miss. The thread runs on the load generator's core, so
    that reading does not take the server's."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_threads = 0
        self.peak_rss_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        os.sched_setaffinity(0, {int(LOADGEN_CPU)})     # this thread only
        status = Path(f'/proc/{self.pid}/status')
        while not self._stop.is_set():
            try:
                text = status.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith('Threads:'):
                    self.peak_threads = max(self.peak_threads, int(line.split()[1]))
                elif line.startswith('VmRSS:'):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
            self.samples += 1
            self._stop.wait(self.interval)


# -- servers ------------------------------------------------------------------------------

class Server:
    def __init__(self, spec: ServerSpec, port: int, ping: tuple[int, int], tag: str,
                 sessions: int = 0, threads: int = 0) -> None:
        self.spec = spec
        self.port = port
        self.threads = 0          # gunicorn --threads (gthread only)
        env = dict(os.environ, BENCH_PING_INTERVAL=str(ping[0]), BENCH_PING_TIMEOUT=str(ping[1]),
                   BENCH_ASYNC_MODE=spec.mode if spec.kind == 'gunicorn' else '',
                   PYTHONUNBUFFERED='1')
        if spec.kind == 'node':
            cmd = ['node', str(BENCH / 'servers' / spec.module), str(port)]
        else:
            cmd = [str(VENV_BIN / 'gunicorn'), '-w', '1', '-b', f'127.0.0.1:{port}',
                   '--chdir', str(BENCH / 'servers'), '--backlog', '4096',
                   '--keep-alive', '30', '--timeout', '300', '--graceful-timeout', '2',
                   '--log-level', 'warning']
            if spec.mode == 'gevent':
                cmd += ['-k', 'gevent', '--worker-connections', '20000']
            else:
                # a thread per session and some, unless told how many
                threads = self.threads = threads or max(spec.threads, sessions + 100)
                cmd += ['-k', 'gthread', '--threads', str(threads),
                        '--worker-connections', str(max(2000, 2 * threads))]
            cmd.append(spec.module)
        LOGS.mkdir(parents=True, exist_ok=True)
        self.logfile = open(LOGS / f'{tag}.log', 'w')
        self.proc = subprocess.Popen(['taskset', '-c', SERVER_CPU] + cmd, env=env,
                                     stdout=self.logfile, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self.worker = self._wait_ready()
        except BaseException:
            self.stop()       # nothing of a failed start stays behind
            raise

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'{self.spec.key} exited at start, see {self.logfile.name}')
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{self.port}/ready', timeout=2).read()
                break
            except urllib.error.HTTPError:
                break        # any HTTP answer means the worker serves
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f'{self.spec.key} did not start, see {self.logfile.name}')
        if self.spec.kind == 'node':
            return self.proc.pid
        kids = _children(self.proc.pid)
        if len(kids) != 1:
            raise RuntimeError(f'expected one gunicorn worker, found {kids}')
        return kids[0]

    def stats(self) -> dict[str, float]:
        return tree_stats(process_tree(self.worker))

    def stop(self) -> None:
        sig = signal.SIGINT if self.spec.kind == 'gunicorn' else signal.SIGTERM
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # stray children, if any
        except (ProcessLookupError, PermissionError):
            pass
        self.logfile.close()


# -- load generator ---------------------------------------------------------------------

def run_loadgen(cfg: dict, server: Server, timeout: float,
                on_mark: Callable[[str], None] | None = None) -> dict:
    """Run one scenario; sample the server at every mark. Returns the result plus samples.

    ``on_mark(name)`` runs at each mark after the sample, while the load generator waits.
    """
    cfg = dict(cfg, port=server.port, interactive=True, deadline=timeout)
    script = 'sio_loadgen.js' if server.spec.protocol == 'sio' else 'loadgen.js'
    proc = subprocess.Popen(['taskset', '-c', LOADGEN_CPU, 'node', str(BENCH / script),
                             json.dumps(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=server.logfile, text=True, bufsize=1)
    killer = threading.Timer(timeout + 30, proc.kill)
    killer.start()
    marks: dict[str, dict] = {}
    result: dict = {'error': 'load generator ended without a result'}
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get('event') == 'mark':
                marks[event['name']] = dict(event, **server.stats())
                if on_mark is not None:
                    on_mark(event['name'])
                proc.stdin.write('go\n')
                proc.stdin.flush()
            elif event.get('event') == 'result':
                result = event
        proc.wait()
    finally:
        killer.cancel()
    result['marks'] = marks
    return result


def foreign_between(marks: dict, a: str, b: str) -> float | None:
    """Share of the server's core used by other processes between two marks."""
    if a not in marks or b not in marks:
        return None
    busy = marks[b]['core_busy_s'] - marks[a]['core_busy_s']
    own = marks[b]['cpu_s'] - marks[a]['cpu_s']
    return max(0.0, busy - own) / (marks[b]['t'] - marks[a]['t'])


def cpu_between(marks: dict, a: str, b: str) -> float | None:
    if a not in marks or b not in marks:
        return None
    return (marks[b]['cpu_s'] - marks[a]['cpu_s']) / (marks[b]['t'] - marks[a]['t'])


# -- scenarios -------------------------------------------------------------------------------

class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        # a fresh port per server start, below the kernel's range for outgoing
        # connections (32768 and up here), which thousands of clients use
        self.port = 21000 + (os.getpid() % 1000) * 10
        self.records: list[dict] = []
        if self.quick:
            self.echo_time = dict(warmup=0.5, duration=2)
            self.idle_ping = (2, 2)
            self.idle_hold = 5
            self.broadcasts = 3
            self.room_broadcasts = 10
        else:
            self.echo_time = dict(warmup=1, duration=5)
            self.idle_ping = (5, 5)
            self.idle_hold = 12
            self.broadcasts = 5
            self.room_broadcasts = 20

    def wanted(self, name: str) -> bool:
        """Whether --scenarios asks for ``name`` (also by its group: 'idle', 'sio')."""
        chosen = self.args.scenarios
        group = ('sio' if name.startswith('sio_') else 'idle' if name.startswith('idle_')
                 else 'cluster' if name.startswith('cluster_') else None)
        return not chosen or name in chosen or group in chosen

    def next_port(self) -> int:
        self.port += 1
        return self.port

    def start(self, spec: ServerSpec, ping: tuple[int, int], tag: str,
              sessions: int = 0, threads: int = 0) -> Server:
        """Start a server on a fresh port; on another one when that port is taken."""
        for attempt in range(3):
            try:
                return Server(spec, self.next_port(), ping, tag, sessions, threads)
            except RuntimeError:
                log = (LOGS / f'{tag}.log').read_text(errors='replace').lower()
                if attempt == 2 or 'address already in use' not in log:
                    raise
                print(f'  {spec.key}: port {self.port} was taken, trying another', flush=True)
        raise AssertionError('unreachable')

    def record(self, spec: ServerSpec, scenario: str, repeat: int, result: dict, **extra) -> None:
        rec = {k: v for k, v in result.items() if k not in ('event', 'marks', 'scenario')}
        rec.update({'server': spec.key, 'label': spec.label, 'scenario': scenario,
                    'repeat': repeat, **extra})
        self.records.append(rec)
        summary = ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                            for k, v in rec.items()
                            if k in ('rate', 'p50_ms', 'p99_ms', 'loadgen_cpu', 'server_cpu',
                                     'foreign_cpu',
                                     'rss_per_session_kib', 'alive', 'answering',
                                     'broadcast_ms', 'broadcast_p99_ms',
                                     'server_cpu_ms_per_broadcast', 'handshakes_made',
                                     'gunicorn_threads', 'threads_held', 'errors', 'error',
                                     'unloaded_p99_ms', 'loaded_p99_ms', 'p99_ratio', 'cut',
                                     'not_cut', 'cut_max_ms', 'rss_growth_mib',
                                     'threads_before', 'threads_peak', 'closed', 'not_closed',
                                     'last_close_ms'))
        print(f'  {spec.key:16} {scenario:14} #{repeat}: {summary}', flush=True)

    def traffic(self, spec: ServerSpec, repeat: int) -> None:
        """Handshakes and echo scenarios, on one server started for them."""
        self.echo_scenarios(spec, repeat, EIO_TRAFFIC)

    def echo_scenarios(self, spec: ServerSpec, repeat: int, scenarios: list) -> None:
        """Run the wanted ones of ``scenarios`` on one server started for them."""
        if not any(self.wanted(name) for name, _ in scenarios):
            return
        server = self.start(spec, (25, 20), f'{spec.key}-traffic-{repeat}')
        try:
            run_loadgen({'scenario': 'warm'}, server, 30)
            for name, cfg in scenarios:
                if not self.wanted(name):
                    continue
                result = run_loadgen(dict(cfg, **self.echo_time), server, 120)
                self.record(spec, name, repeat, result,
                            server_cpu=cpu_between(result['marks'], 'start', 'end'),
                            foreign_cpu=foreign_between(result['marks'], 'start', 'end'))
                time.sleep(0.3)
        finally:
            server.stop()

    def handshakes_unclosed(self, spec: ServerSpec, repeat: int) -> None:
        """Polling handshakes that leave their sessions open, on a server started for them."""
        name = 'handshakes_unclosed'
        if not self.wanted(name):
            return
        total = UNCLOSED_HANDSHAKES[0 if self.quick else 1]
        server = self.start(spec, self.idle_ping, f'{spec.key}-{name}-{repeat}')
        try:
            run_loadgen({'scenario': 'warm'}, server, 30)
            result = run_loadgen({'scenario': 'handshakes', 'concurrency': 20, 'close': False,
                                  'total': total, 'warmup': 0, 'duration': 60}, server, 120)
            marks = result['marks']
            self.record(spec, name, repeat, result,
                        server_cpu=cpu_between(marks, 'start', 'end'),
                        foreign_cpu=foreign_between(marks, 'start', 'end'),
                        rss_end_kib=marks.get('end', {}).get('rss_kib'),
                        threads_end=marks.get('end', {}).get('threads'),
                        gunicorn_threads=server.threads or None)
        finally:
            server.stop()

    def sio_traffic(self, spec: ServerSpec, repeat: int) -> None:
        """Socket.IO connects and acknowledged emits, on one server started for them."""
        self.echo_scenarios(spec, repeat, SIO_TRAFFIC)

    def sio_room(self, spec: ServerSpec, repeat: int) -> None:
        """Emit to a room of SIO_ROOM_SIZE WebSocket clients: time until all have it."""
        name = f'sio_room_{SIO_ROOM_SIZE}'
        if not self.wanted(name):
            return
        server = self.start(spec, (25, 20), f'{spec.key}-{name}-{repeat}',
                        sessions=SIO_ROOM_SIZE)
        try:
            run_loadgen({'scenario': 'warm'}, server, 30)
            result = run_loadgen({'scenario': 'room', 'sessions': SIO_ROOM_SIZE,
                                  'broadcasts': self.room_broadcasts}, server, 240)
            marks = result['marks']
            per_broadcast = None
            if 'joined' in marks and 'done' in marks and result.get('broadcasts'):
                per_broadcast = (1000 * (marks['done']['cpu_s'] - marks['joined']['cpu_s'])
                                 / result['broadcasts'])
            self.record(spec, name, repeat, result,
                        server_cpu_ms_per_broadcast=per_broadcast,
                        server_cpu=cpu_between(marks, 'joined', 'done'),
                        foreign_cpu=foreign_between(marks, 'joined', 'done'))
        finally:
            server.stop()

    def idle(self, spec: ServerSpec, size: int, repeat: int, name: str = '',
             ping: tuple[int, int] | None = None, hold: float = 0, threads: int = 0) -> None:
        """``size`` idle WebSockets: memory, CPU, pings answered while held, broadcasts."""
        name = name or f'idle_{size}'
        if not self.wanted(name):
            return
        ping = ping or self.idle_ping
        hold = hold or self.idle_hold
        server = self.start(spec, ping, f'{spec.key}-{name}-{repeat}', sessions=size,
                            threads=threads)
        try:
            run_loadgen({'scenario': 'warm'}, server, 30)
            time.sleep(0.5)
            base = server.stats()
            result = run_loadgen({'scenario': 'idle', 'sessions': size, 'hold': hold,
                                  'broadcasts': self.broadcasts,
                                  'pingInterval': ping[0]}, server, 300)
            marks = result['marks']
            held = marks.get('held')
            per_session = None
            if held and result.get('sessions'):
                per_session = (held['rss_kib'] - base['rss_kib']) / result['sessions']
            self.record(spec, name, repeat, result, rss_base_kib=base['rss_kib'],
                        rss_held_kib=held and held['rss_kib'],
                        rss_per_session_kib=per_session,
                        gunicorn_threads=server.threads or None,
                        threads_base=base['threads'],
                        threads_connected=marks.get('connected', {}).get('threads'),
                        threads_held=held and held['threads'],
                        server_cpu=cpu_between(marks, 'connected', 'held'),
                        foreign_cpu=foreign_between(marks, 'connected', 'held'))
        finally:
            server.stop()

    def stuck_readers(self, spec: ServerSpec, repeat: int) -> None:
        """STUCK_READERS WebSocket clients each ask for STUCK_OWED bytes and stop
        reading (and answering pings) while one healthy client echoes: its echo
        latency before and while they are stuck, how long the server takes to cut
        each (its ping interval + ping timeout, then the close timeout for a close
        frame nobody reads), the server's memory and threads meanwhile.

        What bounds memory: each stuck client is owed one message of STUCK_OWED
        bytes, one packet per session, far below the queue limits (the echo
        servers keep their defaults: engineio_wsgi's max_queued_packets, 10,000
        packets, bounds the count and not the bytes). On loopback the kernel
        takes most of it (the server's send buffer grows to tcp_wmem's largest,
        4 MB by default; about 0.95 MB of each message sat in the two kernels'
        buffers on the machine this was written on); the server holds the rest
        until the session is cut. The peak growth of the server's RSS shows what
        it keeps per stuck client: the message's copies and the session.
        """
        name = 'stuck_readers'
        if not self.wanted(name) or spec.key not in STUCK_SERVERS:
            return
        size = STUCK_READERS[0 if self.quick else 1]
        ping = self.idle_ping
        # Node's ws waits 30 s for the answer to its close frame: long enough to see it cut
        cut_deadline = sum(ping) + CLOSE_TIMEOUT + NODE_CLOSE_TIMEOUT + 5
        server = self.start(spec, ping, f'{spec.key}-{name}-{repeat}', sessions=size + 1)
        try:
            run_loadgen({'scenario': 'warm'}, server, 30)
            time.sleep(0.5)
            base = server.stats()
            sampler = Sampler(server.worker, 0.1).start()
            try:
                result = run_loadgen({'scenario': 'stuck', 'sessions': size, 'size': STUCK_OWED,
                                      'unloaded': 2 if self.quick else 3,
                                      'cutDeadline': cut_deadline, 'connectBudget': 30},
                                     server, cut_deadline + 90)
            finally:
                sampler.stop()
            marks = result['marks']
            before, loaded = result.get('unloaded_p99_ms'), result.get('loaded_p99_ms')
            self.record(spec, name, repeat, result, rss_base_kib=base['rss_kib'],
                        rss_peak_kib=sampler.peak_rss_kib,
                        rss_growth_mib=(sampler.peak_rss_kib - base['rss_kib']) / 1024,
                        threads_base=base['threads'],
                        threads_stuck=marks.get('stuck', {}).get('threads'),
                        threads_peak=sampler.peak_threads,
                        p99_ratio=loaded / before if loaded and before else None,
                        cut_bound_s=sum(ping) + CLOSE_TIMEOUT,
                        ping=list(ping), gunicorn_threads=server.threads or None,
                        server_cpu=cpu_between(marks, 'stuck', 'cut'),
                        foreign_cpu=foreign_between(marks, 'stuck', 'cut'))
        finally:
            server.stop()

    def ping_wave(self, spec: ServerSpec, repeat: int) -> None:
        """PING_WAVE WebSocket sessions stop answering pings at the same moment, so
        that the server's ping timeouts come due together: the most threads the
        server process has meanwhile (sampled every 20 ms), against its threads
        before and the bound of its pool, and how long until it closed every
        session. WebSocket rather than polling: a polling session holds no request
        between polls, and the timeouts then close nothing but a session."""
        name = 'ping_wave'
        if not self.wanted(name) or spec.key not in PING_WAVE_SERVERS:
            return
        size = PING_WAVE[0 if self.quick else 1]
        ping = self.idle_ping
        wait = 2 * sum(ping) + 10
        server = self.start(spec, ping, f'{spec.key}-{name}-{repeat}', sessions=size)
        sampler = Sampler(server.worker, 0.02)
        try:
            run_loadgen({'scenario': 'warm'}, server, 30)
            time.sleep(0.5)
            base = server.stats()

            def on_mark(mark: str) -> None:
                if mark == 'connected':
                    sampler.start()
                elif mark == 'closed':
                    sampler.stop()

            result = run_loadgen({'scenario': 'wave', 'sessions': size, 'wait': wait,
                                  'connectBudget': 60}, server, wait + 120, on_mark=on_mark)
            marks = result['marks']
            connected, closed = marks.get('connected', {}), marks.get('closed', {})
            self.record(spec, name, repeat, result, rss_base_kib=base['rss_kib'],
                        rss_connected_kib=connected.get('rss_kib'),
                        rss_peak_kib=sampler.peak_rss_kib or None,
                        rss_closed_kib=closed.get('rss_kib'),
                        threads_base=base['threads'], threads_before=connected.get('threads'),
                        threads_peak=sampler.peak_threads or None,
                        threads_closed=closed.get('threads'), samples=sampler.samples,
                        pool_bound=pool_bound(spec), gunicorn_threads=server.threads or None,
                        ping=list(ping), server_cpu=cpu_between(marks, 'connected', 'closed'),
                        foreign_cpu=foreign_between(marks, 'connected', 'closed'))
        finally:
            sampler.stop()
            server.stop()

    def run(self) -> None:
        specs = [s for s in server_specs(self.quick)
                 if not self.args.servers or s.key in self.args.servers]
        repeats = self.args.repeats or (1 if self.quick else 3)
        for repeat in range(1, repeats + 1):
            print(f'repeat {repeat}/{repeats}', flush=True)
            for spec in specs:
                if spec.protocol == 'sio':
                    self.guarded(self.sio_traffic, spec, repeat)
                    self.guarded(self.sio_room, spec, repeat)
                else:
                    self.guarded(self.traffic, spec, repeat)
                    self.guarded(self.handshakes_unclosed, spec, repeat)
            for spec in specs:
                for size in spec.idle_sizes:
                    if size >= 10000 and repeat > 1:
                        continue          # once is enough for the largest one
                    self.guarded(self.idle, spec, size, repeat)
                if spec.mode == 'threading' and spec.protocol == 'eio':
                    self.guarded(self.gthread_idle, spec, repeat)
                if spec.few_threads_idle and repeat == 1:   # once is enough
                    self.guarded(self.few_threads_idle, spec, repeat)
            if repeat == 1:      # once is enough: each takes its servers to their limits
                for spec in specs:
                    self.guarded(self.stuck_readers, spec, repeat)
                for spec in specs:
                    self.guarded(self.ping_wave, spec, repeat)
            if self.cluster_wanted():
                try:
                    cluster.run(self, repeat)
                except Exception as exc:     # a failed start must not end the run
                    print(f'  cluster scenarios failed: {exc!r}', flush=True)
                    self.records.append({'server': 'cluster', 'label': 'cluster',
                                         'scenario': 'cluster', 'repeat': repeat,
                                         'error': repr(exc)})

    def cluster_wanted(self) -> bool:
        """The cluster scenarios (bench/cluster.py) run in a full run, and when
        --scenarios names them; not when --servers picks servers only."""
        if self.args.scenarios:
            return any(self.wanted(name) for name in cluster.NAMES)
        return not self.args.servers

    def gthread_idle(self, spec: ServerSpec, repeat: int) -> None:
        """GTHREAD_IDLE_SIZE idle WebSockets on one gthread worker (--threads sessions + 100):
        how many still answer pings after a few short ping intervals."""
        intervals = GTHREAD_IDLE_INTERVALS[0 if self.quick else 1]
        self.idle(spec, GTHREAD_IDLE_SIZE, repeat, name=f'idle_ws_gthread_{GTHREAD_IDLE_SIZE}',
                  ping=GTHREAD_IDLE_PING, hold=intervals * GTHREAD_IDLE_PING[0] + 1)

    def few_threads_idle(self, spec: ServerSpec, repeat: int) -> None:
        """FEW_THREADS_IDLE idle WebSockets on one gthread worker with few
        threads: all answer pings, and the threads stay few."""
        sessions, threads = FEW_THREADS_IDLE
        self.idle(spec, sessions, repeat, name=f'idle_ws_gthread_{sessions}_t{threads}',
                  ping=GTHREAD_IDLE_PING, hold=FEW_THREADS_INTERVALS * GTHREAD_IDLE_PING[0] + 1,
                  threads=threads)

    def guarded(self, fn, spec: ServerSpec, *args) -> None:
        try:
            fn(spec, *args)
        except Exception as exc:     # one failed server start must not end the run
            print(f'  {spec.key}: {fn.__name__} failed: {exc!r}', flush=True)
            self.records.append({'server': spec.key, 'label': spec.label,
                                 'scenario': fn.__name__, 'repeat': args[-1],
                                 'error': repr(exc)})


def pool_bound(spec: ServerSpec) -> int | None:
    """The most threads engineio_wsgi's pool runs at once on threads
    (max_worker_threads, the echo server keeps its default); None elsewhere."""
    if spec.module != 'eiowsgi_echo:app' or spec.mode != 'threading':
        return None
    from engineio_wsgi.options import Options
    return Options().max_worker_threads


def machine() -> dict:
    cpu = ''
    for line in Path('/proc/cpuinfo').read_text().splitlines():
        if line.startswith('model name'):
            cpu = line.split(':', 1)[1].strip()
            break
    mem = Path('/proc/meminfo').read_text().splitlines()[0].split()[1]

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return '?'
    pkgs = {}
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version
    for name in ('engineio_wsgi', 'python-engineio', 'python-socketio', 'gunicorn', 'gevent',
                 'simple-websocket', 'websockets', 'wsproto'):
        try:
            pkgs[name] = pkg_version(name)
        except PackageNotFoundError:
            pkgs[name] = None
    node_pkgs = {}
    for name in ('engine.io', 'ws', 'socket.io', 'socket.io-client'):
        try:
            node_pkgs[name] = json.loads((BENCH / 'node_modules' / name / 'package.json')
                                         .read_text())['version']
        except OSError:
            node_pkgs[name] = None
    commit = version(['git', '-C', str(BENCH.parent), 'rev-parse', '--short', 'HEAD'])
    dirty = version(['git', '-C', str(BENCH.parent), 'status', '--porcelain', '--',
                     'engineio_wsgi'])
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'nproc': os.cpu_count(),
        'cpu': cpu,
        'mem_gib': round(int(mem) / 1024 / 1024, 1),
        'kernel': platform.release(),
        'python': platform.python_version(),
        'node': version(['node', '--version']),
        'packages': pkgs,
        'node_packages': node_pkgs,
        'commit': commit + (' (with uncommitted changes)' if dirty else ''),
    }


def source_digest(package: Path) -> str:
    """A short hash of the library's sources."""
    import hashlib
    digest = hashlib.sha256()
    for path in sorted(package.rglob('*.py')):
        digest.update(str(path.relative_to(package)).encode() + b'\0' + path.read_bytes())
    return digest.hexdigest()[:12]


def snapshot_library() -> tuple[str, str]:
    """Copy engineio_wsgi as it is now; the servers import the copy (PYTHONPATH).

    Every server of a run then runs the same code even if the checkout is edited
    meanwhile. Returns (directory, digest).
    """
    import tempfile
    tmp = tempfile.mkdtemp(prefix='engineio_wsgi-bench-')
    shutil.copytree(BENCH.parent / 'engineio_wsgi', Path(tmp) / 'engineio_wsgi',
                    ignore=shutil.ignore_patterns('__pycache__'))
    check = subprocess.run([sys.executable, '-c',
                            'import engineio_wsgi; print(engineio_wsgi.__file__)'],
                           env=dict(os.environ, PYTHONPATH=tmp), capture_output=True, text=True)
    if check.returncode != 0 or not check.stdout.startswith(tmp):
        sys.exit(f'the library does not import from its snapshot:\n{check.stderr}{check.stdout}')
    os.environ['PYTHONPATH'] = tmp + os.pathsep + os.environ.get('PYTHONPATH', '')
    return tmp, source_digest(Path(tmp) / 'engineio_wsgi')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--quick', action='store_true', help='one short repeat (about 10 minutes)')
    parser.add_argument('--repeats', type=int, default=0)
    parser.add_argument('--servers', nargs='*', help='only these server keys')
    parser.add_argument('--scenarios', nargs='*',
                        help='only these scenarios, or groups: idle, sio, cluster '
                             '(e.g. ws_echo_50 idle)')
    parser.add_argument('--output', default=str(RESULTS / 'results.json'))
    args = parser.parse_args()
    if shutil.which('taskset') is None:
        sys.exit('taskset (util-linux) is needed')
    started = time.monotonic()
    runner = Runner(args)
    info = machine()
    info['mode'] = 'quick' if args.quick else 'full'
    info['idle_ping'] = runner.idle_ping
    info['idle_hold'] = runner.idle_hold
    info['echo_time'] = runner.echo_time
    info['unclosed_handshakes'] = UNCLOSED_HANDSHAKES[0 if args.quick else 1]
    intervals = GTHREAD_IDLE_INTERVALS[0 if args.quick else 1]
    info['gthread_idle'] = {'sessions': GTHREAD_IDLE_SIZE, 'ping': GTHREAD_IDLE_PING,
                            'hold': intervals * GTHREAD_IDLE_PING[0] + 1}
    info['loadavg_start'] = Path('/proc/loadavg').read_text().split()[:3]
    snapshot, info['sources'] = snapshot_library()
    try:
        runner.run()
    finally:
        info['seconds'] = round(time.monotonic() - started)
        info['loadavg_end'] = Path('/proc/loadavg').read_text().split()[:3]
        shutil.rmtree(snapshot, ignore_errors=True)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({'machine': info, 'records': runner.records},
                                                indent=1) + '\n')
        print(f'raw results: {args.output} ({info["seconds"]} s)', flush=True)
    subprocess.run([sys.executable, str(BENCH / 'report.py'), args.output], check=True)


if __name__ == '__main__':
    main()
