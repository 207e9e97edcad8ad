"""A soak of a cluster (``Server(cluster=...)``): three one-worker gunicorns
(gevent, gevent, gthread) sharing sessions on a real redis-server, behind
nginx balancing round robin (tests/cluster/topology.py), under steady traffic
from long-polling, WebSocket-only and upgraded clients, with sessions closed
and replaced all along.

    load/run-cluster-soak [--minutes M] [--clients N] [--short]

Each client sends numbered messages one at a time and checks that each comes
back once, in order. Criteria (exit 0 when all hold, 1 otherwise): no lost,
repeated or reordered echo and no failed request; no worker restarted;
every worker's resident memory grows less than 10 % from the end of the
warm-up (a fifth of the run) to the end; once the clients are gone every
process owns no session within ping interval + ping timeout; no traceback in
the servers' logs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import websocket  # noqa: E402  (websocket-client)

from tests.cluster.topology import Cluster, running_cluster  # noqa: E402
from tests.live import CLOSE, MESSAGE, PING, Packet, PollingClient, http_request  # noqa: E402

KINDS = ('polling', 'websocket', 'upgraded')


class WsSession:
    """Engine.IO over a WebSocket: opened directly, or upgraded from polling."""

    def __init__(self, cluster: Cluster, upgrade: bool) -> None:
        query = 'EIO=4&transport=websocket'
        self.poller: PollingClient | None = None
        if upgrade:
            self.poller = PollingClient(cluster.front.port, timeout=10)
            self.poller.handshake()
            query += f'&sid={self.poller.sid}'
        self.ws = websocket.create_connection(f'{cluster.ws_url}/engine.io/?{query}', timeout=10)
        self.sid = self.poller.sid if self.poller else None
        if upgrade:
            self.ws.send('2probe')
            if self._next() != '3probe':
                raise AssertionError('no probe answer')
            self.ws.send('5')
        else:
            opened = self._next()
            if not opened.startswith('0'):
                raise AssertionError(f'no open packet: {opened[:80]!r}')
            self.sid = json.loads(opened[1:])['sid']

    def _next(self) -> str:
        while True:
            frame = self.ws.recv()
            if frame == '2':
                self.ws.send('3')
                continue
            if frame == '6':        # a noop left from the upgrade
                continue
            return frame

    def echo(self, text: str) -> str:
        self.ws.send('4' + text)
        frame = self._next()
        if not frame.startswith('4'):
            raise AssertionError(f'expected a message, got {frame[:80]!r}')
        return frame[1:]

    def close(self) -> None:
        try:
            self.ws.send('1')
            self.ws.close(timeout=1)
        except (OSError, websocket.WebSocketException):
            pass


class PollSession:
    def __init__(self, cluster: Cluster) -> None:
        self.client = PollingClient(cluster.front.port, timeout=15)
        self.client.handshake()

    def echo(self, text: str) -> str:
        self.client.send(text)
        got: list[str] = []
        while not got:
            for packet in self.client.poll(timeout=15):     # a ping may follow the echo
                if packet.type == PING:
                    self.client.pong()
                elif packet.type == MESSAGE:
                    got.append(packet.data)  # type: ignore[arg-type]
                elif packet.type == CLOSE:
                    raise AssertionError('the session was closed')
        if len(got) != 1:
            raise AssertionError(f'one message sent, {len(got)} came back: {got!r}')
        return got[0]

    @property
    def sid(self) -> str | None:
        return self.client.sid

    def close(self) -> None:
        try:
            self.client.post(Packet(CLOSE), timeout=5)
        except OSError:
            pass


def _now() -> str:
    return time.strftime('%H:%M:%S')


def _tail(exc: Exception) -> str:
    """The end of an error's text: the status and body of a refused request."""
    text = f'{type(exc).__name__}: {exc}'
    return text if len(text) <= 300 else text[:120] + ' ... ' + text[-160:]


class Soaker(threading.Thread):
    """One client: a session of one kind at a time, replaced now and then."""

    def __init__(self, cluster: Cluster, kind: str, stop: threading.Event,
                 problems: list[str], counts: Counter[str]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.kind, self.stop, self.problems, self.counts = (
            cluster, kind, stop, problems, counts)

    def open(self) -> Any:
        if self.kind == 'polling':
            return PollSession(self.cluster)
        return WsSession(self.cluster, upgrade=self.kind == 'upgraded')

    def run(self) -> None:
        rng = random.Random()
        while not self.stop.is_set():
            try:
                session = self.open()
            except Exception as exc:  # noqa: BLE001 - counted, the soak goes on
                self.problems.append(f'{self.kind} open at {_now()}: {_tail(exc)}')
                self.stop.wait(1)
                continue
            self.counts[f'{self.kind} sessions'] += 1
            try:
                for n in range(rng.randint(20, 60)):
                    if self.stop.is_set():
                        break
                    text = f'{self.kind}-{n}-{rng.random():.6f}'
                    got = session.echo(text)
                    if got != text:
                        self.problems.append(f'{self.kind}: sent {text!r}, got {got!r}')
                        break
                    self.counts[f'{self.kind} echoes'] += 1
                    self.stop.wait(rng.uniform(0.2, 1.0))
            except Exception as exc:  # noqa: BLE001
                self.problems.append(f'{self.kind} echo at {_now()}, session {session.sid}: '
                                     f'{_tail(exc)}')
            finally:
                session.close()


def rss_kib(pid: int) -> int:
    try:
        with open(f'/proc/{pid}/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sessions(cluster: Cluster) -> list[int]:
    return [int(http_request(s.port, 'GET', '/__sessions', timeout=5).body)
            for s in cluster.servers]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--clients', type=int, default=60, help='spread over the three kinds')
    parser.add_argument('--short', action='store_true', help='1 minute, 30 clients')
    args = parser.parse_args()
    if args.short:
        args.minutes, args.clients = 1.0, 30
    duration = args.minutes * 60
    failures: list[str] = []
    with running_cluster('three-servers') as cluster:
        pids = {s.port: cluster.workers(s) for s in cluster.servers}
        worker_pids = [pid for found in pids.values() for pid in found]
        stop = threading.Event()
        problems: list[str] = []
        counts: Counter[str] = Counter()
        clients = [Soaker(cluster, KINDS[i % 3], stop, problems, counts)
                   for i in range(args.clients)]
        started = time.monotonic()
        for client in clients:
            client.start()
        warm = started + duration / 5
        base: dict[int, int] = {}
        while time.monotonic() - started < duration:
            time.sleep(5)
            if not base and time.monotonic() >= warm:
                base = {pid: rss_kib(pid) for pid in worker_pids}
            print(f'{time.monotonic() - started:6.0f} s  sessions per process {sessions(cluster)}  '
                  f'rss KiB {[rss_kib(p) for p in worker_pids]}  {dict(counts)}  '
                  f'problems {len(problems)}', flush=True)
        end = {pid: rss_kib(pid) for pid in worker_pids}
        stop.set()
        for client in clients:
            client.join(30)
        grace = 2 + 2 + 2       # ping interval + ping timeout, and a margin
        deadline = time.monotonic() + grace
        while sum(sessions(cluster)) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = sessions(cluster)

        failures += problems[:20]
        if len(problems) > 20:
            failures.append(f'... {len(problems) - 20} more problems')
        if {s.port: cluster.workers(s) for s in cluster.servers} != pids:
            failures.append('a worker restarted')
        for pid in worker_pids:
            if base.get(pid) and end[pid] > base[pid] * 1.10:
                failures.append(f'worker {pid}: resident memory {base[pid]} -> {end[pid]} KiB')
        if any(left):
            failures.append(f'sessions left after the clients closed: {left}')
        log = cluster.log()
        if 'Traceback' in log:
            failures.append('traceback in the servers\' logs')
        # the sessions of the last problems first: those of the start may repeat
        sids = list(dict.fromkeys(re.findall(r'session (\S+):', ' '.join(problems[::-1]))))
        for sid in sids[:5]:
            lines = [line for line in log.splitlines() if sid in line]
            print(f'--- the servers\' log lines of {sid}:\n' + '\n'.join(lines[-10:]))
        print(f'\n{args.minutes:g} min, {args.clients} clients: {dict(counts)}')
        print(f'resident memory KiB, after warm-up -> end: '
              f'{[(base.get(p), end[p]) for p in worker_pids]}')
    if failures:
        print('NOT MET:\n  ' + '\n  '.join(failures))
        return 1
    print('met: no lost, repeated or reordered echo, no restart, memory flat, no session left')
    return 0


if __name__ == '__main__':
    sys.exit(main())
