"""Threading mode with many idle WebSockets: threads per session, and what gives first.

    bench/.venv/bin/python bench/threadprofile.py [--sizes 1000 2000 5000] [--threads N]

For each size, starts the engineio_wsgi echo server under ``gunicorn -k gthread -w 1``
(``--threads`` the size + 100 unless given; ping 5 s / 5 s; the library's log on),
connects that many idle WebSocket sessions (``loadgen.js idle``), holds them for
three ping intervals and prints: the worker's OS threads once all are connected
and after the hold, what those threads were doing (``py-spy dump``, grouped by
the innermost frame of the library or, for the others, their innermost frame),
how many sessions still answered pings, and why the server ended the others
(the reasons in its log). Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import time

import harness

PING = (5, 5)


def thread_kinds(pid: int) -> collections.Counter[str]:
    """What each thread of ``pid`` is doing, from ``py-spy dump``."""
    done = subprocess.run([str(harness.VENV_BIN / 'py-spy'), 'dump', '--pid', str(pid),
                           '--nonblocking'], capture_output=True, text=True, timeout=300)
    out = done.stdout
    kinds: collections.Counter[str] = collections.Counter()
    if done.returncode != 0:
        kinds[f'(py-spy failed: {done.stderr.strip()[-200:]})'] += 1
    for block in out.split('\nThread ')[1:]:
        frames = [line.strip() for line in block.splitlines()[1:] if line.startswith('    ')]
        ours = [f for f in frames if 'engineio_wsgi/' in f]
        pick = ours[0] if ours else (frames[0] if frames else '(no Python frames)')
        kinds[re.sub(r'\s*\(.*/', ' (', pick)] += 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--sizes', type=int, nargs='*', default=[1000, 2000, 5000])
    parser.add_argument('--threads', type=int, default=0,
                        help='gunicorn --threads (default: sessions + 100)')
    parser.add_argument('--hold', type=float, default=3 * PING[0] + 1)
    args = parser.parse_args()
    os.environ['BENCH_LOGGER'] = '1'
    spec = next(s for s in harness.server_specs(quick=True) if s.key == 'eiowsgi-gthread')
    for size in args.sizes:
        if args.threads:
            spec.threads = args.threads
        tag = f'threadprofile-{size}'
        server = harness.Server(spec, 23000 + int(time.time()) % 1000, PING, tag,
                                sessions=0 if args.threads else size)
        kinds: dict[str, collections.Counter[str]] = {}

        def on_mark(name: str, kinds: dict = kinds, pid: int = server.worker) -> None:
            if name in ('connected', 'held'):
                kinds[name] = thread_kinds(pid)

        try:
            harness.run_loadgen({'scenario': 'warm'}, server, 30)
            base = server.stats()
            result = harness.run_loadgen({'scenario': 'idle', 'sessions': size, 'hold': args.hold,
                                          'broadcasts': 1, 'pingInterval': PING[0]}, server, 400,
                                         on_mark=on_mark)
        finally:
            server.stop()
        marks = result.get('marks', {})
        log = (harness.LOGS / f'{tag}.log').read_text(errors='replace')
        reasons = collections.Counter(re.findall(r' closed: (.+)$', log, re.M))
        print(f'== {size:,} idle WebSockets, gunicorn -k gthread --threads {server.threads}, '
              f'ping {PING[0]} s / {PING[1]} s')
        print(f"connected {result.get('sessions')} in {result.get('connect_seconds', 0):.1f} s "
              f"({result.get('connect_failures')} failed); after {args.hold:.0f} s: "
              f"{result.get('alive')} open, {result.get('answering')} answering pings; "
              f"broadcast {result.get('broadcast_all_ms')} ms; errors {result.get('error_kinds')}")
        for name in ('connected', 'held'):
            if name in marks:
                t = marks[name]['threads'] - base['threads']
                n = marks[name].get('sessions') or result.get('alive') or 1
                print(f'{name}: {marks[name]["threads"]} threads in the worker '
                      f'({t / n:.2f} per session over the {base["threads"]} at rest), '
                      f'RSS {marks[name]["rss_kib"] / 1024:.0f} MiB')
            for kind, count in kinds.get(name, collections.Counter()).most_common(8):
                print(f'  {count:6}  {kind}')
        print('sessions ended by the server, by reason:', dict(reasons.most_common()))
        print(flush=True)


if __name__ == '__main__':
    sys.exit(main())
