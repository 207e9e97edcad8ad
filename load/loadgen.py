"""Load, soak and open/close-cycle runs against the echo app on gunicorn.

    python load/loadgen.py load   [--short] [--ws N] [--polling N] [--worker gevent|gthread]
    python load/loadgen.py soak   [--short] [--minutes M]
    python load/loadgen.py cycles [--short] [--cycles N]

(``load/run-load``, ``load/run-soak`` and ``load/run-cycles`` call these.)

Everything runs on 127.0.0.1: one gunicorn worker serving tests/apps/echo.py,
and the clients in separate processes (gevent, one greenlet per session, raw
sockets: a minimal WebSocket client and keep-alive HTTP for polling). The
server's ``/__stats`` route gives sessions, threads, greenlets and resident
memory. Each command prints a short report and exits 1 when its criterion
fails, 2 when the run itself could not be set up.
"""

from __future__ import annotations

import sys

if len(sys.argv) > 1 and sys.argv[1] in ('clients', 'cyclers'):
    from gevent import monkey

    monkey.patch_all()

import argparse
import base64
import http.client
import json
import os
import re
import resource
import signal
import socket
import statistics
import struct
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = '127.0.0.1'
EIO = '/engine.io/?EIO=4'


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ==========================================================================
# client side (runs in gevent-patched subprocesses)


class WS:
    """A minimal WebSocket client: text frames only, pings answered by the caller."""

    def __init__(self, port: int, query: str = 'transport=websocket') -> None:
        import gevent.lock
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f'GET {EIO}&{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\n'
                           'Upgrade: websocket\r\nConnection: Upgrade\r\n'
                           f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n')
                          .encode())
        buf = b''
        while b'\r\n\r\n' not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError('closed during the handshake')
            buf += chunk
        head, _, self.buf = buf.partition(b'\r\n\r\n')
        if not head.startswith(b'HTTP/1.1 101'):
            raise ConnectionError(head.split(b'\r\n')[0].decode('latin-1'))
        self.sock.settimeout(None)
        self.lock = gevent.lock.Semaphore()

    def send(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        if n < 126:
            head = b'\x81' + bytes([0x80 | n])
        else:
            head = b'\x81' + bytes([0x80 | 126]) + struct.pack('!H', n)
        with self.lock:  # zero mask key: the payload goes as is
            self.sock.sendall(head + b'\x00\x00\x00\x00' + data)

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def recv(self) -> tuple[int, bytes]:
        self._need(2)
        op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        pos = 2
        if n == 126:
            self._need(4)
            n, pos = struct.unpack('!H', self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, pos = struct.unpack('!Q', self.buf[2:10])[0], 10
        self._need(pos + n)
        data, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
        return op, data

    def close(self) -> None:
        try:
            with self.lock:
                self.sock.sendall(b'\x88\x82\x00\x00\x00\x00\x03\xe8')
        except OSError:
            pass
        self.sock.close()


class Stats:
    def __init__(self) -> None:
        self.opened = 0
        self.open_failed = 0
        self.dropped = 0
        self.pings = 0
        self.sent = 0
        self.echoed = 0
        self.check_ok = 0
        self.check_failed = 0
        self.rtts: list[float] = []
        self.errors: list[str] = []
        self.closing = False

    def error(self, text: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(text)

    def report(self) -> dict:
        rtts = sorted(self.rtts)

        def pct(q: float) -> float | None:
            if not rtts:
                return None
            return round(rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1000, 1)
        return {'opened': self.opened, 'open_failed': self.open_failed, 'dropped': self.dropped,
                'pings': self.pings, 'sent': self.sent, 'echoed': self.echoed,
                'check_ok': self.check_ok, 'check_failed': self.check_failed,
                'rtt_p50_ms': pct(0.5), 'rtt_p99_ms': pct(0.99), 'errors': self.errors}


class WSSession:
    def __init__(self, port: int, stats: Stats) -> None:
        self.port, self.stats = port, stats
        self.ws: WS | None = None
        self.waiting: dict[str, float] = {}
        self.alive = False

    def open(self) -> None:
        import gevent
        self.ws = WS(self.port)
        op, data = self.ws.recv()
        if not data.startswith(b'0'):
            raise ConnectionError(f'no open packet: {data[:50]!r}')
        self.alive = True
        gevent.spawn(self._read)

    def _read(self) -> None:
        ws, st = self.ws, self.stats
        try:
            while True:
                op, data = ws.recv()
                if op == 0x8:
                    raise EOFError
                if data == b'2':
                    ws.send('3')
                    st.pings += 1
                elif data[:1] == b'4':
                    st.echoed += 1
                    started = self.waiting.pop(data[1:].decode(), None)
                    if started is not None:
                        st.rtts.append(time.monotonic() - started)
                elif data[:1] == b'1':
                    raise EOFError
        except (EOFError, OSError) as exc:
            if self.alive and not st.closing:
                st.dropped += 1
                st.error(f'websocket dropped: {exc!r}')
            self.alive = False

    def send(self, text: str) -> None:
        self.waiting[text] = time.monotonic()
        self.ws.send('4' + text)
        self.stats.sent += 1

    def close(self) -> None:
        self.alive = False
        if self.ws is not None:
            try:
                self.ws.send('1')
            except OSError:
                pass
            self.ws.close()


class PollingSession:
    """Long-polling over two keep-alive connections (GET and POST)."""

    def __init__(self, port: int, stats: Stats) -> None:
        self.port, self.stats = port, stats
        self.sid = ''
        self.waiting: dict[str, float] = {}
        self.alive = False
        import gevent.lock
        self.post_lock = gevent.lock.Semaphore()
        self.get_conn = http.client.HTTPConnection(HOST, port, timeout=120)
        self.post_conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def _request(self, conn_name: str, method: str, body: bytes | None = None) -> tuple[int, bytes]:
        target = f'{EIO}&transport=polling' + (f'&sid={self.sid}' if self.sid else '')
        for attempt in (1, 2):
            conn = getattr(self, conn_name)
            try:
                conn.request(method, target, body=body,
                             headers={'Content-Type': 'text/plain;charset=UTF-8'} if body else {})
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                # the server closed an idle keep-alive connection: reconnect once
                conn.close()
                setattr(self, conn_name, http.client.HTTPConnection(HOST, self.port, timeout=120))
                if attempt == 2:
                    raise
        raise AssertionError('unreachable')

    def open(self) -> None:
        import gevent
        status, body = self._request('get_conn', 'GET')
        if status != 200 or not body.startswith(b'0'):
            raise ConnectionError(f'handshake {status} {body[:60]!r}')
        self.sid = json.loads(body[1:].split(b'\x1e')[0])['sid']
        self.alive = True
        gevent.spawn(self._poll)

    def _poll(self) -> None:
        st = self.stats
        try:
            while self.alive:
                status, body = self._request('get_conn', 'GET')
                if status != 200:
                    raise ConnectionError(f'poll answered {status} {body[:80]!r}')
                for part in body.split(b'\x1e'):
                    if part == b'2':
                        self.post(b'3')
                        st.pings += 1
                    elif part[:1] == b'4':
                        st.echoed += 1
                        started = self.waiting.pop(part[1:].decode(), None)
                        if started is not None:
                            st.rtts.append(time.monotonic() - started)
                    elif part[:1] == b'1':
                        raise ConnectionError('close packet')
        except (OSError, ConnectionError, http.client.HTTPException) as exc:
            if self.alive and not st.closing:
                st.dropped += 1
                st.error(f'polling dropped: {exc!r}')
            self.alive = False

    def post(self, body: bytes) -> None:
        with self.post_lock:
            status, answer = self._request('post_conn', 'POST', body)
        if status != 200:
            raise ConnectionError(f'POST answered {status} {answer[:80]!r}')

    def send(self, text: str) -> None:
        self.waiting[text] = time.monotonic()
        self.post(b'4' + text.encode())
        self.stats.sent += 1

    def close(self) -> None:
        was = self.alive
        self.alive = False
        if was:
            try:
                self.post(b'1')
            except (OSError, ConnectionError, http.client.HTTPException):
                pass
        self.get_conn.close()
        self.post_conn.close()


def wait_file(path: str, timeout: float) -> bool:
    import gevent
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.1)
    return True


def run_clients(args: argparse.Namespace) -> None:
    """Open sessions; CHECK/CLOSE when the orchestrator's control files appear."""
    import gevent
    import gevent.pool
    raise_fd_limit()
    stats = Stats()
    cls = WSSession if args.transport == 'websocket' else PollingSession
    sessions: list = []

    def open_one(i: int) -> None:
        s = cls(args.port, stats)
        for attempt in range(3):
            try:
                s.open()
                stats.opened += 1
                sessions.append(s)
                return
            except (OSError, ConnectionError, http.client.HTTPException) as exc:
                if attempt == 2:
                    stats.open_failed += 1
                    stats.error(f'open failed: {exc!r}')
                gevent.sleep(0.2)

    pool = gevent.pool.Pool(args.concurrency)
    for i in range(args.count):
        pool.spawn(open_one, i)
    pool.join()
    print(json.dumps({'phase': 'opened', 'opened': stats.opened,
                      'failed': stats.open_failed}), flush=True)

    # steady traffic until 'check': each session sends a message every
    # args.interval seconds (0: none); args.churn sessions per second are
    # closed and replaced by new ones
    counter = [0]

    def traffic(s) -> None:
        while s.alive and not os.path.exists(args.control + '.check'):
            gevent.sleep(args.interval * (0.5 + (hash(s) % 1000) / 1000))
            if s.alive:
                counter[0] += 1
                try:
                    s.send(f't{counter[0]}')
                except (OSError, ConnectionError, http.client.HTTPException) as exc:
                    if s.alive:
                        stats.dropped += 1
                        stats.error(f'send failed: {exc!r}')
                        s.alive = False

    def churn() -> None:
        while not os.path.exists(args.control + '.check'):
            gevent.sleep(1.0 / args.churn)
            if not sessions:
                continue
            old = sessions.pop(0)
            old.alive = False
            old.close()
            new = cls(args.port, stats)
            try:
                new.open()
                sessions.append(new)
                if args.interval:
                    gevent.spawn(traffic, new)
            except (OSError, ConnectionError, http.client.HTTPException) as exc:
                stats.open_failed += 1
                stats.error(f'reopen failed: {exc!r}')

    if args.interval:
        for s in sessions:
            gevent.spawn(traffic, s)
    if args.churn:
        gevent.spawn(churn)

    if not wait_file(args.control + '.check', args.max_seconds):
        stats.error('no check signal')
    gevent.sleep(args.interval + 0.5)            # let traffic in flight settle
    alive = [s for s in sessions if s.alive]

    def check(i: int, s) -> None:
        token = f'check-{os.getpid()}-{i}'
        try:
            s.send(token)
        except (OSError, ConnectionError, http.client.HTTPException):
            stats.check_failed += 1
            return
        deadline = time.monotonic() + 20
        while token in s.waiting and time.monotonic() < deadline and s.alive:
            gevent.sleep(0.05)
        if token in s.waiting:
            stats.check_failed += 1
            stats.error(f'no echo for {token}')
        else:
            stats.check_ok += 1
    pool = gevent.pool.Pool(500)
    for i, s in enumerate(alive):
        pool.spawn(check, i, s)
    pool.join()
    stats.check_failed += len(sessions) - len(alive)
    print(json.dumps({'phase': 'checked', 'ok': stats.check_ok,
                      'failed': stats.check_failed}), flush=True)
    wait_file(args.control + '.close', args.max_seconds)
    stats.closing = True
    pool = gevent.pool.Pool(200)
    for s in sessions:
        pool.spawn(s.close)
    pool.join(timeout=30)
    print(json.dumps({'phase': 'done', **stats.report()}), flush=True)


def run_cyclers(args: argparse.Namespace) -> None:
    """``count`` open/echo/close cycles, half WebSocket, half polling."""
    import gevent
    import gevent.pool
    raise_fd_limit()
    stats = Stats()
    stats.closing = False

    def cycle(i: int) -> None:
        cls = WSSession if i % 2 == 0 else PollingSession
        s = cls(args.port, stats)
        try:
            s.open()
            token = f'c{i}'
            s.send(token)
            deadline = time.monotonic() + 10
            while token in s.waiting and time.monotonic() < deadline and s.alive:
                gevent.sleep(0.005)
            if token in s.waiting:
                stats.check_failed += 1
                stats.error(f'no echo in cycle {i}')
            else:
                stats.check_ok += 1
            stats.closing = True
            s.close()
        except (OSError, ConnectionError, http.client.HTTPException) as exc:
            stats.open_failed += 1
            stats.error(f'cycle {i}: {exc!r}')

    pool = gevent.pool.Pool(args.concurrency)
    for i in range(args.start, args.start + args.count):
        pool.spawn(cycle, i)
    pool.join()
    print(json.dumps({'phase': 'done', **stats.report()}), flush=True)


# ==========================================================================
# orchestration (plain process, no gevent)


class Server:
    def __init__(self, worker: str, env: dict[str, str], connections: int) -> None:
        args = ['-k', 'gevent', '--worker-connections', str(connections)] if worker == 'gevent' \
            else ['-k', 'gthread', '--threads', str(connections), '--worker-connections',
                  str(connections * 2)]
        self.log_file = tempfile.NamedTemporaryFile(prefix='eio-load-', suffix='.log', delete=False)
        child_env = {**os.environ, 'PYTHONPATH': ROOT, 'PYTHONUNBUFFERED': '1', **env}
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'gunicorn', '-w', '1', '-b', f'{HOST}:0', '--backlog', '4096',
             '--keep-alive', '120', '--graceful-timeout', '5', '--no-control-socket',
             '--log-level', 'info', *args, 'tests.apps.echo:app'],
            cwd=ROOT, env=child_env, stdin=subprocess.DEVNULL, stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.port = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = re.search(r'Listening at: http://127\.0\.0\.1:(\d+)', self.log())
            if found:
                self.port = int(found.group(1))
                break
            time.sleep(0.1)
        if not self.port:
            self.stop()
            raise SystemExit(f'server did not start:\n{self.log()[-3000:]}')
        for _ in range(100):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)

    def log(self) -> str:
        with open(self.log_file.name, encoding='utf-8', errors='replace') as f:
            return f.read()

    def stats(self) -> dict:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            conn.request('GET', '/__stats')
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def spawn_clients(port: int, transport: str, count: int, control: str, *, concurrency: int,
                  interval: float = 0.0, churn: float = 0.0,
                  max_seconds: float = 900) -> subprocess.Popen:
    cmd = [sys.executable, os.path.abspath(__file__), 'clients', '--port', str(port),
           '--transport', transport, '--count', str(count), '--control', control,
           '--concurrency', str(concurrency), '--interval', str(interval), '--churn', str(churn),
           '--max-seconds', str(max_seconds)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'PYTHONPATH': ROOT})


def read_phase(proc: subprocess.Popen, phase: str, timeout: float) -> dict:
    import select
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if data.get('phase') == phase:
                return data
    err = proc.stderr.read() if proc.poll() is not None else ''
    raise SystemExit(f'client process gave no {phase!r} within {timeout} s\n{err[-2000:]}')


def pool_threads(stats: dict) -> int:
    """Threads of gunicorn gthread's own pool (it grows to --threads and stays)."""
    return sum(n for name, n in stats['thread_names'].items()
               if name.startswith('ThreadPoolExecutor'))


def touch(path: str) -> None:
    with open(path, 'w'):
        pass


def server_disconnects(server: Server) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for line in server.log().splitlines():
        if line.startswith('echo: disconnect '):
            reason = line.split(' ', 3)[3]
            reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def traffic_run(args: argparse.Namespace, *, ws: int, polling: int, ping: float,
                hold: float, interval: float, churn: float, samples_every: float,
                warmup: float) -> tuple[dict, list[dict], dict, float]:
    """Open the sessions, hold them ``hold`` seconds (sampling /__stats), check, close."""
    env = {'EIO_PING_INTERVAL': str(ping), 'EIO_PING_TIMEOUT': str(ping),
           'EIO_MAX_SESSIONS_PER_CLIENT': '', 'EIO_LOG_LEVEL': 'WARNING'}
    server = Server(args.worker, env, connections=max(1000, (ws + 2 * polling) * 2 + 200))
    control = tempfile.mktemp(prefix='eio-load-ctl-')
    procs = []
    try:
        started = time.monotonic()
        per_proc = 2500
        for transport, total in (('websocket', ws), ('polling', polling)):
            while total > 0:
                n = min(per_proc, total)
                procs.append(spawn_clients(server.port, transport, n, control, concurrency=100,
                                           interval=interval, churn=churn / max(1, len(procs) + 1)
                                           if churn else 0.0, max_seconds=hold + 600))
                total -= n
        opened = [read_phase(p, 'opened', 300) for p in procs]
        open_time = time.monotonic() - started
        samples = []
        hold_start = time.monotonic()
        while time.monotonic() - hold_start < hold:
            time.sleep(min(samples_every, max(0.1, hold - (time.monotonic() - hold_start))))
            s = server.stats()
            s['t'] = round(time.monotonic() - hold_start, 1)
            samples.append(s)
            if args.verbose:
                print('  ', s, flush=True)
        touch(control + '.check')
        for p in procs:
            read_phase(p, 'checked', 120)
        before_close = server.stats()
        disconnects = server_disconnects(server)
        touch(control + '.close')
        done = [read_phase(p, 'done', 120) for p in procs]
        for p in procs:
            p.wait(30)
        total = {key: sum(d[key] for d in done) for key in
                 ('opened', 'open_failed', 'dropped', 'pings', 'sent', 'echoed', 'check_ok',
                  'check_failed')}
        total['opened_first'] = sum(o['opened'] for o in opened)
        total['errors'] = [e for d in done for e in d['errors']][:10]
        total['rtt_p50_ms'] = max((d['rtt_p50_ms'] or 0) for d in done)
        total['rtt_p99_ms'] = max((d['rtt_p99_ms'] or 0) for d in done)
        total['disconnects_before_close'] = disconnects
        total['before_close'] = before_close
        after = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            after = server.stats()
            if after['sessions'] == 0:
                break
            time.sleep(0.5)
        total['after_close'] = after
        total['tracebacks'] = server.log().count('Traceback')
        return total, samples, after or {}, open_time
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.stop()
        for suffix in ('.check', '.close'):
            try:
                os.unlink(control + suffix)
            except OSError:
                pass


def cmd_load(args: argparse.Namespace) -> int:
    ws, polling = args.ws, args.polling
    if args.short:
        ws, polling = min(ws, 1000), min(polling, 100)
    ping = args.ping or (2.0 if args.short else 5.0)
    hold = 3 * ping + ping / 2
    print(f'load: {ws} WebSocket + {polling} polling sessions, one gunicorn {args.worker} worker, '
          f'ping interval {ping:g} s, held {hold:g} s (3 ping intervals and more)', flush=True)
    total, samples, after, open_time = traffic_run(
        args, ws=ws, polling=polling, ping=ping, hold=hold, interval=0.0, churn=0.0,
        samples_every=ping, warmup=0)
    peak = max(s['sessions'] for s in samples) if samples else 0
    low = min(s['sessions'] for s in samples) if samples else 0
    want = ws + polling
    print(f'  opened {total["opened_first"]}/{want} in {open_time:.1f} s; server sessions during '
          f'the hold: min {low}, max {peak}')
    print(f'  pings answered {total["pings"]} (~{total["pings"] / max(1, want):.1f} per session); '
          f'dropped {total["dropped"]}; final echo check {total["check_ok"]}/{want} '
          f'(p50 {total["rtt_p50_ms"]} ms, p99 {total["rtt_p99_ms"]} ms)')
    rss = [s['rss_kb'] for s in samples]
    print(f'  server RSS {min(rss) // 1024}-{max(rss) // 1024} MB, greenlets max '
          f'{max(s["greenlets"] for s in samples)}, '
          f'threads max {max(s["threads"] for s in samples)}; '
          f'after close: {after}')
    print('  server-side disconnects before the close: '
          f'{total["disconnects_before_close"] or "none"}; '
          f'tracebacks in the server log: {total["tracebacks"]}')
    if total['errors']:
        print('  client errors:', *total['errors'][:5], sep='\n    ')
    ok = (total['opened_first'] == want and low == want and total['dropped'] == 0
          and total['check_ok'] == want and total['tracebacks'] == 0
          and total['pings'] >= 3 * want and not total['disconnects_before_close']
          and after.get('sessions') == 0)
    print('load: PASS' if ok else 'load: FAIL')
    return 0 if ok else 1


def cmd_soak(args: argparse.Namespace) -> int:
    minutes = args.minutes or (1.5 if args.short else 10.0)
    hold = minutes * 60
    warmup = hold * 0.2
    ws, polling = (200, 40) if args.short else (500, 100)
    print(f'soak: {minutes:g} min of steady traffic on one gunicorn {args.worker} worker: {ws} '
          f'WebSocket + {polling} polling sessions, each sending a message about every 2 s, '
          f'{args.churn:g} sessions/s closed and replaced; warm-up {warmup:.0f} s', flush=True)
    total, samples, after, _ = traffic_run(
        args, ws=ws, polling=polling, ping=5.0, hold=hold, interval=2.0, churn=args.churn,
        samples_every=10.0, warmup=warmup)
    warm = [s for s in samples if s['t'] >= warmup]
    if len(warm) < 2:
        print('soak: too few samples')
        return 2
    first, last = warm[0], warm[-1]
    # compare the averages of the first and the last quarter after warm-up (noise)
    q = max(1, len(warm) // 4)
    rss_start = statistics.mean(s['rss_kb'] for s in warm[:q])
    rss_end = statistics.mean(s['rss_kb'] for s in warm[-q:])
    growth = (rss_end - rss_start) / rss_start * 100
    glets = [s['greenlets'] for s in warm]
    threads = [s['threads'] for s in warm]
    sessions = [s['sessions'] for s in warm]
    print(f'  messages sent {total["sent"]}, echoed {total["echoed"]}, pings {total["pings"]}, '
          f'dropped {total["dropped"]}, reopen failures {total["open_failed"]}')
    print(f'  RSS after warm-up {rss_start / 1024:.1f} MB -> end {rss_end / 1024:.1f} MB '
          f'({growth:+.2f} %); min/max over the run {min(s["rss_kb"] for s in samples) / 1024:.1f}/'
          f'{max(s["rss_kb"] for s in samples) / 1024:.1f} MB')
    print(f'  sessions {min(sessions)}-{max(sessions)}; greenlets {min(glets)}-{max(glets)} '
          f'(first {first["greenlets"]}, last {last["greenlets"]}); threads '
          f'{min(threads)}-{max(threads)}; after close: {after}')
    print(f'  final echo check {total["check_ok"]}/{total["check_ok"] + total["check_failed"]}; '
          f'tracebacks {total["tracebacks"]}; '
          f'p50 {total["rtt_p50_ms"]} ms, p99 {total["rtt_p99_ms"]} ms')
    if total['errors']:
        print('  client errors:', *total['errors'][:5], sep='\n    ')
    want = ws + polling
    flat_glets = max(glets) - min(glets) <= max(50, 0.1 * want)
    flat_threads = max(threads) - min(threads) <= 5
    ok = (growth < 5.0 and flat_glets and flat_threads and total['dropped'] == 0
          and total['check_failed'] == 0 and total['tracebacks'] == 0
          and after.get('sessions') == 0)
    print('soak: PASS' if ok else 'soak: FAIL')
    return 0 if ok else 1


def cmd_cycles(args: argparse.Namespace) -> int:
    cycles = args.cycles or (2000 if args.short else 10_000)
    env = {'EIO_PING_INTERVAL': '5', 'EIO_PING_TIMEOUT': '5', 'EIO_LOG_LEVEL': 'WARNING'}
    server = Server(args.worker, env, connections=1000)
    print(f'cycles: {cycles} open/echo/close cycles (half WebSocket, half polling), 50 at a '
          f'time, on one gunicorn {args.worker} worker', flush=True)

    def run(start: int, count: int) -> dict:
        cmd = [sys.executable, os.path.abspath(__file__), 'cyclers', '--port', str(server.port),
               '--count', str(count), '--start', str(start), '--concurrency', '50']
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                             env={**os.environ, 'PYTHONPATH': ROOT})
        for line in out.stdout.splitlines():
            data = json.loads(line)
            if data.get('phase') == 'done':
                return data
        raise SystemExit(f'cycler failed:\n{out.stderr[-2000:]}')

    def settled(timeout: float = 30.0, quiet: float = 4.0) -> dict:
        """Stats once no session is left and the counts have not moved for
        ``quiet`` seconds: longer than the 3 s after which idle workers of the
        library's pool (threads, or greenlets under gevent) leave."""
        deadline = time.monotonic() + timeout
        seen: tuple[int, int, int] | None = None
        since = time.monotonic()
        while True:
            last = server.stats()
            last['threads'] -= pool_threads(last)
            now = time.monotonic()
            counts = (last['sessions'], last['threads'], last['greenlets'])
            if counts != seen:
                seen, since = counts, now
            elif last['sessions'] == 0 and now - since >= quiet:
                return last
            if now >= deadline:
                return last
            time.sleep(0.5)

    try:
        warm = run(0, 1000)
        base = settled()
        started = time.monotonic()
        result = run(200, cycles)
        took = time.monotonic() - started
        after = settled()
        tracebacks = server.log().count('Traceback')
    finally:
        server.stop()
    rss_growth = (after['rss_kb'] - base['rss_kb']) / base['rss_kb'] * 100
    print(f'  {result["check_ok"]}/{cycles} cycles echoed in {took:.1f} s '
          f'({cycles / took:.0f}/s); failures {result["open_failed"] + result["check_failed"]}; '
          f'warm-up {warm["check_ok"]}/1000')
    print(f'  before: sessions {base["sessions"]}, threads {base["threads"]} (not counting '
          f'gunicorn\'s gthread pool), greenlets '
          f'{base["greenlets"]}, RSS {base["rss_kb"] / 1024:.1f} MB')
    print(f'  after:  sessions {after["sessions"]}, threads {after["threads"]}, greenlets '
          f'{after["greenlets"]}, RSS {after["rss_kb"] / 1024:.1f} MB ({rss_growth:+.1f} %); '
          f'tracebacks {tracebacks}')
    if result['errors']:
        print('  errors:', *result['errors'][:5], sep='\n    ')
    ok = (result['check_ok'] == cycles and after['sessions'] == 0
          and after['threads'] <= base['threads'] and after['greenlets'] <= base['greenlets'] + 2
          and rss_growth < 10 and tracebacks == 0)
    print('cycles: PASS' if ok else 'cycles: FAIL')
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('load', 'soak', 'cycles'):
        p = sub.add_parser(name)
        p.add_argument('--short', action='store_true', help='a quick check (under 2 minutes)')
        p.add_argument('--worker', choices=('gevent', 'gthread'), default='gevent')
        p.add_argument('--verbose', action='store_true', help='print every /__stats sample')
        if name == 'load':
            p.add_argument('--ws', type=int, default=5000)
            p.add_argument('--polling', type=int, default=500)
            p.add_argument('--ping', type=float, default=0.0, help='ping interval and timeout, s')
        if name == 'soak':
            p.add_argument('--minutes', type=float, default=0.0)
            p.add_argument('--churn', type=float, default=5.0, help='sessions replaced per second')
        if name == 'cycles':
            p.add_argument('--cycles', type=int, default=0)
    c = sub.add_parser('clients')
    for opt, kind in (('--port', int), ('--transport', str), ('--count', int), ('--control', str),
                      ('--concurrency', int), ('--interval', float), ('--churn', float),
                      ('--max-seconds', float)):
        c.add_argument(opt, type=kind, required=True)
    y = sub.add_parser('cyclers')
    for opt in ('--port', '--count', '--start', '--concurrency'):
        y.add_argument(opt, type=int, required=True)
    args = parser.parse_args()
    if args.command == 'clients':
        run_clients(args)
        return 0
    if args.command == 'cyclers':
        run_cyclers(args)
        return 0
    limit = raise_fd_limit()
    if limit < 12000 and args.command == 'load' and not args.short:
        print(f'warning: open files limit {limit}; 5,500 sessions need about 12,000', flush=True)
    return {'load': cmd_load, 'soak': cmd_soak, 'cycles': cmd_cycles}[args.command](args)


if __name__ == '__main__':
    sys.exit(main())
