"""Memory of idle WebSocket sessions on engineio_wsgi (gevent), object by object.

    bench/.venv/bin/python bench/memprofile.py [--sessions 1000] [--top 25]

Starts the echo server with tracemalloc on (``servers/eiowsgi_traced.py``) under
``gunicorn -k gevent -w 1`` as in the benchmark, takes a snapshot after a
warm-up, connects ``--sessions`` idle WebSocket sessions (``loadgen.js idle``),
takes a second snapshot while they are held, and prints per session: the growth
of the worker's resident memory, what tracemalloc saw allocated (by source
line, by file, by the allocating call chain), and the objects the garbage
collector tracks, by type. The snapshots stay in results/profile/memory/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
import urllib.request

import harness

OUT = harness.RESULTS / 'profile' / 'memory'
SPEC = harness.ServerSpec('eiowsgi-gevent-traced', 'engineio_wsgi (gevent, tracemalloc)',
                          'gevent', 'gunicorn', 'eiowsgi_traced:app')


def take(server: harness.Server, name: str) -> tracemalloc.Snapshot:
    url = f'http://127.0.0.1:{server.port}/tracemalloc?name={name}'
    path = urllib.request.urlopen(url, timeout=120).read().decode().strip()
    return tracemalloc.Snapshot.load(path)


def short(filename: str) -> str:
    for marker in ('/engineio_wsgi/', '/site-packages/', '/lib/python3'):
        if marker in filename:
            return filename[filename.index(marker) + 1:]
    return filename


def per_session(stats: list[tracemalloc.StatisticDiff], n: int, top: int,
                frames: int = 1) -> list[str]:
    total = sum(s.size_diff for s in stats)
    out = []
    for s in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top]:
        innermost = list(s.traceback)[::-1][:frames]    # a traceback runs oldest first
        where = ' <- '.join(f'{short(f.filename)}:{f.lineno}' for f in innermost)
        out.append(f'  {s.size_diff / n:8.0f} B  {s.count_diff / n:6.1f} blocks  '
                   f'{100 * s.size_diff / total if total else 0:5.1f}%  {where}')
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--sessions', type=int, default=1000)
    parser.add_argument('--top', type=int, default=25)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ['BENCH_TRACEMALLOC_DIR'] = str(OUT)
    n = args.sessions
    server = harness.Server(SPEC, 23000 + int(time.time()) % 1000, (25, 20), 'memprofile',
                            sessions=n)
    snaps: dict[str, tracemalloc.Snapshot] = {}
    rss: dict[str, int] = {}
    try:
        harness.run_loadgen({'scenario': 'warm'}, server, 30)
        snaps['base'] = take(server, 'base')
        rss['base'] = int(server.stats()['rss_kib'])

        def on_mark(name: str) -> None:
            if name == 'connected':
                rss['held'] = int(server.stats()['rss_kib'])
                snaps['held'] = take(server, 'held')

        result = harness.run_loadgen({'scenario': 'idle', 'sessions': n, 'hold': 1,
                                      'broadcasts': 0, 'pingInterval': 25}, server, 300,
                                     on_mark=on_mark)
    finally:
        server.stop()
    if 'held' not in snaps:
        sys.exit(f'no snapshot with the sessions held: {result}')
    connected = result.get('sessions', 0)
    if connected != n:
        print(f'warning: {connected} of {n} sessions connected')
    n = connected or n
    held, base = snaps['held'], snaps['base']
    traced = sum(s.size_diff for s in held.compare_to(base, 'filename'))
    print(f'== {n:,} idle WebSocket sessions on engineio_wsgi (gunicorn -k gevent -w 1)')
    print(f'resident memory growth: {(rss["held"] - rss["base"]) * 1024 / n:,.0f} B per session '
          f'(with tracemalloc on; its own bookkeeping included)')
    print(f'traced by tracemalloc:  {traced / n:,.0f} B per session')
    print('\nby source line (bytes and blocks per session, share of the traced growth):')
    print('\n'.join(per_session(held.compare_to(base, 'lineno'), n, args.top)))
    print('\nby file:')
    print('\n'.join(per_session(held.compare_to(base, 'filename'), n, 12)))
    print('\nby call chain (innermost first, 4 frames):')
    print('\n'.join(per_session(held.compare_to(base, 'traceback'), n, 12, frames=4)))
    types = {k: json.loads((OUT / f'{k}.types.json').read_text()) for k in ('base', 'held')}
    grown = sorted(((k, c - types['base']['count'].get(k, 0),
                     types['held']['bytes'][k] - types['base']['bytes'].get(k, 0))
                    for k, c in types['held']['count'].items()), key=lambda x: -x[2])
    print('\nobjects tracked by the garbage collector, per session (count, sys.getsizeof bytes):')
    for kind, count, size in grown[:args.top]:
        if count > 0:
            print(f'  {count / n:6.2f}  {size / n:7.0f} B  {kind}')


if __name__ == '__main__':
    sys.exit(main())
