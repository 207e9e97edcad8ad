"""Profile engineio_wsgi's worker under echo load with py-spy.

    bench/.venv/bin/python bench/profile.py [ws_echo_50 poll_echo_50 ...] [--server KEY]
    bench/.venv/bin/python bench/profile.py sio_ack_ws_50 --server sio-eiowsgi-gevent
    bench/.venv/bin/python bench/profile.py handshakes_unclosed --server eiowsgi-gthread
    bench/.venv/bin/python bench/profile.py --summarize bench/results/profile/*.txt

Starts an echo server (default: engineio_wsgi on gevent) as in the benchmark, runs the scenario
for a while, samples the gunicorn worker with ``py-spy record`` and prints the
functions with the most time (self and inclusive), with file:line; in threading
mode only the thread holding the GIL is sampled. The
collapsed stacks are kept in results/profile/ (flamegraph-ready).
py-spy needs ptrace rights over the worker (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import threading
import time
from pathlib import Path

import harness

SCENARIOS = dict(harness.EIO_TRAFFIC + harness.SIO_TRAFFIC)
# emits to a room of 1,000, one after the other, for longer than the sampling
SCENARIOS[f'sio_room_{harness.SIO_ROOM_SIZE}'] = {
    'scenario': 'room', 'sessions': harness.SIO_ROOM_SIZE, 'broadcasts': 150}
# handshakes that leave their sessions open, for longer than the sampling: with a
# 5 s ping each lives about 10 s, so the server carries thousands meanwhile
SCENARIOS['handshakes_unclosed'] = {'scenario': 'handshakes', 'close': False, 'concurrency': 20,
                                    'total': 30000, 'warmup': 0}
# polling echo next to 2,000 sessions handshaken and left open (each with its heartbeat)
SCENARIOS['poll_echo_50_open'] = dict(SCENARIOS['poll_echo_50'], open=2000)
# one message to 5,000 idle WebSockets, again and again (0.3 s apart)
SCENARIOS['broadcast_5000'] = {'scenario': 'idle', 'sessions': 5000, 'hold': 1, 'broadcasts': 60,
                               'pingInterval': 25}
# 5,000 idle WebSockets, pinged every 5 s: what the server does while nothing happens
SCENARIOS['idle_5000'] = {'scenario': 'idle', 'sessions': 5000, 'hold': 25, 'broadcasts': 0,
                          'pingInterval': 5}
#: the server's ping interval and timeout, where not the traffic runs' 25 s / 20 s
PING = {'handshakes_unclosed': (5, 5), 'idle_5000': (5, 5)}
#: scenarios that connect this many WebSockets before the sampling starts
CONNECTS = {'broadcast_5000': 5000, 'idle_5000': 5000}


PACKAGES = ('engineio_wsgi', 'gunicorn', 'gevent', 'websockets', 'engineio', 'socketio',
            'simple_websocket', 'greenlet')


def package_of(frame: str) -> str:
    """``engineio_wsgi``, ``gunicorn``, ``gevent``... for a py-spy frame ``func (file:line)``;
    ``python`` for the standard library."""
    where = frame[frame.rfind('(') + 1:]
    for part in where.split('/')[:-1]:
        if part in PACKAGES:
            return part
    return 'python'


def summarize(raw: Path, top: int) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(' ')
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(';')
        total += count
        self_time[frames[-1]] += count
        seen = set()
        for frame in frames:
            name = frame.rsplit(':', 1)[0] if frame.endswith(')') else frame
            if name not in seen:       # count a function once per stack (recursion)
                seen.add(name)
                inclusive[name] += count
    packages: collections.Counter[str] = collections.Counter()
    for frame, n in self_time.items():
        packages[package_of(frame)] += n
    own: collections.Counter[str] = collections.Counter()
    for frame, n in self_time.items():
        own[frame.rsplit(':', 1)[0] + ')' if frame.endswith(')') else frame] += n
    out = [f'{total} samples', '', 'self time by package (of the innermost frame):',
           '  ' + ', '.join(f'{name} {100 * n / total:.1f}%'
                            for name, n in packages.most_common()),
           '', 'self time (function):']
    for frame, n in own.most_common(top):
        out.append(f'  {100 * n / total:5.1f}%  {frame}')
    out += ['', 'self time (line):']
    for frame, n in self_time.most_common(top):
        out.append(f'  {100 * n / total:5.1f}%  {frame}')
    out += ['', 'inclusive time (function):']
    for frame, n in inclusive.most_common(top):
        out.append(f'  {100 * n / total:5.1f}%  {frame})' if not frame.endswith(')') else
                   f'  {100 * n / total:5.1f}%  {frame}')
    return '\n'.join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('scenarios', nargs='*', default=['ws_echo_50', 'poll_echo_50'])
    parser.add_argument('--server', default='eiowsgi-gevent',
                        help='server key as in harness.py (default eiowsgi-gevent)')
    parser.add_argument('--seconds', type=float, default=8)
    parser.add_argument('--top', type=int, default=30)
    parser.add_argument('--summarize', nargs='*', metavar='RAW',
                        help='only summarize these raw files of earlier runs')
    args = parser.parse_args()
    if args.summarize:
        for path in args.summarize:
            print(f'== {path}')
            print(summarize(Path(path), args.top))
            print()
        return
    out_dir = harness.RESULTS / 'profile'
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = next(s for s in harness.server_specs(quick=True) if s.key == args.server)
    if spec.kind != 'gunicorn':
        sys.exit('py-spy profiles the Python servers only')
    for name in args.scenarios:
        server = harness.Server(spec, 23000 + int(time.time()) % 1000,
                                PING.get(name, (25, 20)), f'profile-{name}',
                                sessions=CONNECTS.get(name, 0))
        try:
            harness.run_loadgen({'scenario': 'warm'}, server, 30)
            raw = out_dir / f'{spec.key}-{name}.txt'
            # the open sessions first, if any (500 handshakes a second or more)
            # and the idle WebSockets (400 a second or more)
            opening = SCENARIOS[name].get('open', 0) / 500 + CONNECTS.get(name, 0) / 400
            cfg = dict({'warmup': 1}, **SCENARIOS[name], duration=args.seconds + 2 + opening)
            result: dict = {}
            load = threading.Thread(target=lambda result=result, cfg=cfg, server=server:
                                    result.update(harness.run_loadgen(cfg, server, 120)))
            load.start()
            time.sleep(1.5 + opening)
            subprocess.run([str(harness.VENV_BIN / 'py-spy'), 'record', '--pid', str(server.worker),
                            '--duration', str(int(args.seconds)), '--rate', '250',
                            '--format', 'raw', '--output', str(raw), '--nonblocking']
                           # threads: only the one holding the GIL, that is where the
                           # time goes; the others wait (gevent: one thread anyway)
                           + (['--gil'] if spec.mode == 'threading' else []),
                           check=True, capture_output=True)
            load.join()
            print(f'== {spec.key} {name}: {result.get("rate", 0):,.0f}/s under the profiler '
                  f'({raw.relative_to(harness.BENCH)})')
            print(summarize(raw, args.top))
            print()
        finally:
            server.stop()


if __name__ == '__main__':
    sys.exit(main())
