"""A/B runs of one benchmark scenario: the echo server as it is, against the same server
with proposals of PROFILE.md patched in (``servers/eiowsgi_experiment.py``).

    bench/.venv/bin/python bench/experiment.py ws_echo_50 locks [--server KEY] [--pairs 3]
    bench/.venv/bin/python bench/experiment.py idle_1000 hb_timer     (memory and idle CPU)

Each pair starts both servers afresh, one after the other, alternating which goes
first; prints each rate and rate per CPU-second of the server, and the median ratios
(``idle_N``: resident memory per idle WebSocket and the server's CPU while they are held,
ping 5 s, 12 s; then the times of five broadcasts to all of them).
On a busy machine the per-CPU-second ratio is the one to read.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

import harness

SCENARIOS = dict(harness.EIO_TRAFFIC)
SCENARIOS['handshakes_unclosed'] = {'scenario': 'handshakes', 'close': False, 'concurrency': 20,
                                    'total': harness.UNCLOSED_HANDSHAKES[1], 'warmup': 0}
PING = {'handshakes_unclosed': (5, 5)}


def run_idle(spec: harness.ServerSpec, size: int, tag: str) -> tuple[float, float]:
    """``size`` idle WebSockets: (KiB of resident memory per session, server CPU % while held)."""
    server = harness.Server(spec, 23000 + int(time.time() * 7) % 1000, (5, 5), tag,
                            sessions=size)
    try:
        harness.run_loadgen({'scenario': 'warm'}, server, 30)
        time.sleep(0.5)
        base = server.stats()
        result = harness.run_loadgen({'scenario': 'idle', 'sessions': size, 'hold': 12,
                                      'broadcasts': 5, 'pingInterval': 5}, server, 300)
    finally:
        server.stop()
    marks = result['marks']
    times = sorted(result.get('broadcast_all_ms') or [])
    print(f"  {spec.key}: {result.get('answering')} of {size} answering pings after 12 s; "
          f"{marks.get('connected', {}).get('threads')} threads once connected; "
          f"broadcasts to all: {', '.join(f'{t:.0f}' for t in times)} ms", flush=True)
    kib = (marks['held']['rss_kib'] - base['rss_kib']) / max(1, result.get('sessions', 0))
    return kib, 100 * (harness.cpu_between(marks, 'connected', 'held') or 0)


def run(spec: harness.ServerSpec, name: str, tag: str) -> tuple[float, float]:
    if name.startswith('idle_'):
        return run_idle(spec, int(name.split('_')[1]), tag)
    cfg = SCENARIOS[name]
    server = harness.Server(spec, 23000 + int(time.time() * 7) % 1000, PING.get(name, (25, 20)),
                            tag)
    try:
        harness.run_loadgen({'scenario': 'warm'}, server, 30)
        result = harness.run_loadgen(dict({'warmup': 1}, **cfg, duration=5), server, 120)
    finally:
        server.stop()
    cpu = harness.cpu_between(result['marks'], 'start', 'end') or 0
    rate = result.get('rate') or 0
    return rate, rate / cpu if cpu > 0.05 else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('scenario',
                        help='a scenario of harness.EIO_TRAFFIC, handshakes_unclosed or idle_N')
    parser.add_argument('experiment',
                        help='BENCH_EXPERIMENT: locks, peer_gone, post_wake, hb_timer, hb_shared, '
                             'or several')
    parser.add_argument('--server', default='eiowsgi-gevent')
    parser.add_argument('--pairs', type=int, default=3)
    args = parser.parse_args()
    base = next(s for s in harness.server_specs(quick=True) if s.key == args.server)
    patched = dataclasses.replace(base, key=base.key + '+' + args.experiment,
                                  module='eiowsgi_experiment:app')
    ratios, cpu_ratios = [], []
    for i in range(args.pairs):
        order = [(base, ''), (patched, args.experiment)]
        if i % 2:
            order.reverse()
        got = {}
        for spec, experiment in order:
            os.environ['BENCH_EXPERIMENT'] = experiment
            got[spec.key] = run(spec, args.scenario, f'experiment-{spec.key}-{i}')
            first, second = got[spec.key]
            if args.scenario.startswith('idle_'):
                print(f'  {spec.key:32} {args.scenario}: {first:6.1f} KiB per session  '
                      f'{second:5.1f} % CPU', flush=True)
            else:
                print(f'  {spec.key:32} {args.scenario}: {first:9,.0f}/s  '
                      f'{second:9,.0f} per CPU-second', flush=True)
        a, b = got[patched.key], got[base.key]
        ratios.append(a[0] / b[0] if b[0] else 0)
        cpu_ratios.append(a[1] / b[1] if b[1] else 0)
    if args.scenario.startswith('idle_'):
        print(f'{args.experiment} on {args.server} {args.scenario}: memory per session '
              f'{statistics.median(ratios):.2f}×, idle CPU {statistics.median(cpu_ratios):.2f}× '
              f'(patched ÷ as is, medians of {args.pairs} pairs; memory each: '
              f'{", ".join(f"{r:.2f}" for r in ratios)}; CPU each: '
              f'{", ".join(f"{r:.2f}" for r in cpu_ratios)})')
        return
    print(f'{args.experiment} on {args.server} {args.scenario}: '
          f'{statistics.median(ratios):.2f}× as measured, '
          f'{statistics.median(cpu_ratios):.2f}× per CPU-second (medians of {args.pairs} pairs; '
          f'each: {", ".join(f"{r:.2f}" for r in cpu_ratios)})')


if __name__ == '__main__':
    sys.exit(main())
