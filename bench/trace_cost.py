"""What the packet trace costs when it is off: the packet paths timed in-process.

    bench/.venv/bin/python bench/trace_cost.py                  # against the tree before the trace
    bench/.venv/bin/python bench/trace_cost.py --baseline REV   # against any revision

Times, per packet, on a real ``Session`` of a long-polling transport
(threading backend, nothing mocked): ``Session.enqueue`` of a message (the
queue emptied by the transport's ``take`` every 1,000 packets), and
``Session.receive`` of a message (handled inline: ``async_handlers=False``,
an empty handler) and of a pong. Once on this tree without a logger (the
trace off), and on the baseline revision, a tree without the trace's hooks
(by default the parent of the commit that added ``engineio_wsgi/trace.py``),
extracted with ``git archive``; each in its own process, alternately, best
of several runs. Then, on this tree only: the trace on with its lines
filtered out (a logger above DEBUG), and on with its lines formatted and
dropped (a ``NullHandler`` at DEBUG).

Prints nanoseconds per packet and the ratio to the baseline; a ratio within
a few percent of 1.00 is noise (compare two baseline runs with
``--baseline HEAD``). Loopback-free and quick (about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: runs inside a child process whose sys.path starts with the tree to time
WORKER = r'''
import json, logging, sys, time
import engineio_wsgi
from engineio_wsgi.backends import create_backend
from engineio_wsgi.options import Options
from engineio_wsgi.packets import Packet, PacketType
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.session import Session

mode, count, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kwargs = {'async_handlers': False}
if mode == 'filtered':
    quiet = logging.getLogger('bench.quiet')
    quiet.setLevel(logging.INFO)
    kwargs['logger'] = quiet
elif mode == 'written':
    loud = logging.getLogger('bench.loud')
    loud.setLevel(logging.DEBUG)
    loud.propagate = False
    loud.addHandler(logging.NullHandler())
    kwargs['logger'] = loud
options = Options.from_kwargs(**kwargs)
if mode != 'off':
    engineio_wsgi.logs.configure(options.logger)
backend = create_backend('threading', 4)
session = Session('bench', PollingTransport, backend, options,
                  on_message=lambda session, data: None,
                  on_close=lambda session, reason: None,
                  on_finished=lambda session: None)
with session.lock:
    session.take()   # the open packet


def send():
    packet = Packet(PacketType.MESSAGE, 'hello')
    enqueue, lock, take = session.enqueue, session.lock, session.take
    for _ in range(count // 1000):
        for _ in range(1000):
            enqueue(packet)
        with lock:
            take()


def receive(packet):
    receive = session.receive
    def run():
        for _ in range(count):
            receive(packet)
    return run


cases = {'enqueue message': send,
         'receive message': receive(Packet(PacketType.MESSAGE, 'hello')),
         'receive pong': receive(Packet(PacketType.PONG))}
best = {}
for name, case in cases.items():
    times = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        case()
        times.append((time.perf_counter_ns() - started) / count)
    best[name] = min(times)
print(json.dumps({'file': engineio_wsgi.__file__, 'ns': best}))
'''


def baseline_revision() -> str:
    """The parent of the commit that added the trace's module."""
    added = subprocess.run(
        ['git', '-C', str(ROOT), 'log', '--diff-filter=A', '--format=%H', '--',
         'engineio_wsgi/trace.py'], check=True, capture_output=True, text=True).stdout.split()
    if not added:
        sys.exit('trace_cost.py: engineio_wsgi/trace.py is not committed yet; pass --baseline')
    return added[-1] + '^'


def extract(revision: str, into: Path) -> None:
    archive = subprocess.run(['git', '-C', str(ROOT), 'archive', revision, 'engineio_wsgi'],
                             check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', str(into)], input=archive, check=True)


def time_tree(tree: Path, mode: str, count: int, rounds: int) -> dict[str, float]:
    env = {**os.environ, 'PYTHONPATH': str(tree)}
    out = subprocess.run([sys.executable, '-c', WORKER, mode, str(count), str(rounds)],
                         cwd=str(tree), env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout)
    assert Path(result['file']).resolve().is_relative_to(tree.resolve()), result['file']
    return result['ns']


def best_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: min(run[name] for run in runs) for name in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--baseline', help='a revision without the hooks (default: see above)')
    parser.add_argument('--count', type=int, default=200_000, help='packets per round')
    parser.add_argument('--rounds', type=int, default=5, help='rounds per process')
    parser.add_argument('--runs', type=int, default=4, help='processes per tree, alternating')
    args = parser.parse_args()
    revision = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short',
                               args.baseline or baseline_revision()],
                              check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix='trace-cost-') as tmp:
        base = Path(tmp)
        extract(revision, base)
        runs: dict[str, list[dict[str, float]]] = {'baseline': [], 'off': []}
        for _ in range(args.runs):
            runs['baseline'].append(time_tree(base, 'off', args.count, args.rounds))
            runs['off'].append(time_tree(ROOT, 'off', args.count, args.rounds))
        for mode in ('filtered', 'written'):
            runs[mode] = [time_tree(ROOT, mode, args.count, args.rounds)
                          for _ in range(max(1, args.runs // 2))]
    best = {label: best_of(found) for label, found in runs.items()}
    labels = {'baseline': f'baseline ({revision})', 'off': 'trace off',
              'filtered': 'trace on, filtered', 'written': 'trace on, written'}
    print(f'ns per packet, best of {args.runs} processes x {args.rounds} rounds of '
          f'{args.count:,} packets; ratio to the baseline\n')
    names = list(best['baseline'])
    print(f'{"":22}' + ''.join(f'{name:>24}' for name in names))
    for label, values in best.items():
        cells = ''.join(f'{values[n]:>14.0f} ({values[n] / best["baseline"][n]:5.2f}x)'
                        for n in names)
        print(f'{labels[label]:22}{cells}')


if __name__ == '__main__':
    main()
