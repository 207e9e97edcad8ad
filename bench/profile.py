"""Profile engineio_wsgi's worker under echo load with py-spy.

    bench/.venv/bin/python bench/profile.py [ws_echo_50 poll_echo_50 ...] [--server KEY]
    bench/.venv/bin/python bench/profile.py sio_ack_ws_50 --server sio-eiowsgi-gevent

Starts an echo server (default: engineio_wsgi on gevent) as in the benchmark, runs the scenario
for a while, samples the gunicorn worker with ``py-spy record`` and prints the
functions with the most time (self and inclusive), with file:line. The
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
    out = [f'{total} samples', '', 'self time (line):']
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
    args = parser.parse_args()
    out_dir = harness.RESULTS / 'profile'
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = next(s for s in harness.server_specs(quick=True) if s.key == args.server)
    if spec.kind != 'gunicorn':
        sys.exit('py-spy profiles the Python servers only')
    for name in args.scenarios:
        server = harness.Server(spec, 23000 + int(time.time()) % 1000,
                                (25, 20), f'profile-{name}')
        try:
            harness.run_loadgen({'scenario': 'warm'}, server, 30)
            raw = out_dir / f'{spec.key}-{name}.txt'
            cfg = dict(SCENARIOS[name], warmup=1, duration=args.seconds + 2)
            result: dict = {}
            load = threading.Thread(target=lambda: result.update(
                harness.run_loadgen(cfg, server, 120)))
            load.start()
            time.sleep(1.5)
            subprocess.run([str(harness.VENV_BIN / 'py-spy'), 'record', '--pid', str(server.worker),
                            '--duration', str(int(args.seconds)), '--rate', '250',
                            '--format', 'raw', '--output', str(raw), '--nonblocking'],
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
