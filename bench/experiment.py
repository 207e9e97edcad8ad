"""A/B runs of one benchmark scenario: the echo server as it is, against the same server
with proposals of PROFILE.md patched in (``servers/eiowsgi_experiment.py``).

    bench/.venv/bin/python bench/experiment.py ws_echo_50 locks [--server eiowsgi-gevent] [--pairs 3]

Each pair starts both servers afresh, one after the other, alternating which goes
first; prints each rate and rate per CPU-second of the server, and the median ratios.
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


def run(spec: harness.ServerSpec, name: str, tag: str) -> tuple[float, float]:
    cfg = dict(harness.EIO_TRAFFIC)[name]
    server = harness.Server(spec, 23000 + int(time.time() * 7) % 1000, (25, 20), tag)
    try:
        harness.run_loadgen({'scenario': 'warm'}, server, 30)
        result = harness.run_loadgen(dict(cfg, warmup=1, duration=5), server, 120)
    finally:
        server.stop()
    cpu = harness.cpu_between(result['marks'], 'start', 'end') or 0
    rate = result.get('rate') or 0
    return rate, rate / cpu if cpu > 0.05 else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('scenario', help='a scenario of harness.EIO_TRAFFIC')
    parser.add_argument('experiment', help='BENCH_EXPERIMENT: locks, peer_gone, post_wake, ...')
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
            print(f'  {spec.key:32} {args.scenario}: {got[spec.key][0]:9,.0f}/s  '
                  f'{got[spec.key][1]:9,.0f} per CPU-second', flush=True)
        a, b = got[patched.key], got[base.key]
        ratios.append(a[0] / b[0] if b[0] else 0)
        cpu_ratios.append(a[1] / b[1] if b[1] else 0)
    print(f'{args.experiment} on {args.server} {args.scenario}: '
          f'{statistics.median(ratios):.2f}× as measured, '
          f'{statistics.median(cpu_ratios):.2f}× per CPU-second (medians of {args.pairs} pairs; '
          f'each: {", ".join(f"{r:.2f}" for r in cpu_ratios)})')


if __name__ == '__main__':
    sys.exit(main())
