"""Thread bounds of threading mode under many WebSockets (see the README).

    load/run-bounds [--sessions N] [--cap N]

Starts ``gunicorn -k gthread`` with the test app tests/apps/bounds.py and
``max_worker_threads=N``, opens N WebSocket sessions from this process, then:

1. ``eio.disconnect()`` of all of them, with clients that never answer the
   close frame (each connection waits out its close timeout on the server);
2. with N new sessions whose clients never read, a broadcast of 8 x 100 kB to
   each (every write blocks).

Reports, for each, the most pool workers and the most threads that neither
serve a request nor are the heartbeats' scheduler, seen by the server (sampled
every millisecond). Exit code 0 when both stay within the cap (+1 for the
thread that runs close timeouts).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import websocket  # noqa: E402  (websocket-client)

from tests.integration.gunicorn_runner import start_gunicorn  # noqa: E402
from tests.live import http_request, wait_until  # noqa: E402


def stats(port: int, path: str = '/__stats') -> dict[str, int]:
    return json.loads(http_request(port, 'GET', path, timeout=60).body)


def open_sessions(port: int, count: int, rcvbuf: int | None = None) -> list[websocket.WebSocket]:
    options = {'sockopt': ((socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf),)} if rcvbuf else {}
    sockets = []
    for _ in range(count):
        ws = websocket.create_connection(
            f'ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket', timeout=60, **options)
        ws.recv()
        sockets.append(ws)
    return sockets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sessions', type=int, default=5000)
    parser.add_argument('--cap', type=int, default=64)
    args = parser.parse_args()
    n = args.sessions
    server = start_gunicorn(
        ['-k', 'gthread', '--threads', str(n + 100), '--worker-connections', str(2 * n + 100),
         '--backlog', '4096'],
        'tests.apps.bounds:app', {'EIO_MAX_WORKER_THREADS': str(args.cap)})
    ok = True
    try:
        port = server.port
        started = time.monotonic()
        sockets = open_sessions(port, n)
        before = stats(port, '/__peak')
        print(f'{n} WebSocket sessions open in {time.monotonic() - started:.1f} s; '
              f'server threads {before["threads"]}')
        started = time.monotonic()
        http_request(port, 'GET', '/__disconnect_all', timeout=60)
        wait_until(lambda: stats(port)['sessions'] == 0, timeout=300, interval=0.2)
        after = stats(port)
        print(f'disconnect(): all closed in {time.monotonic() - started:.1f} s; '
              f'peak pool workers {after["peak_workers"]}, peak other threads '
              f'{after["peak_others"]} (from {before["others"]}), peak threads {after["peak"]}')
        ok &= after['peak_workers'] <= args.cap
        ok &= after['peak_others'] - before['others'] <= args.cap + 1
        for ws in sockets:
            ws.sock.close()

        sockets = open_sessions(port, n, rcvbuf=4096)
        before = stats(port, '/__peak')
        http_request(port, 'GET', '/__broadcast?n=8&size=100000', timeout=120)
        wait_until(lambda: stats(port)['workers'] >= min(args.cap, n), timeout=120)
        after = stats(port)
        print(f'broadcast to {n} clients that do not read: peak pool workers '
              f'{after["peak_workers"]}, peak other threads {after["peak_others"]} '
              f'(from {before["others"]}), peak threads {after["peak"]}')
        ok &= after['peak_workers'] <= args.cap
        ok &= after['peak_others'] - before['others'] <= args.cap
        for ws in sockets:
            ws.sock.close()
    finally:
        server.kill()
    print('PASS' if ok else 'FAIL')
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
