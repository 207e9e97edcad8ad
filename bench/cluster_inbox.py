"""The cluster inbox on a real redis-server: latency of one message (send to
handler, p50/p99) and messages per second from one sender.

    python bench/cluster_inbox.py [--messages N] [--size BYTES]

Starts its own redis-server (Debian package redis-server) on a free loopback
port and stops it after. Round trips per message: one PUBLISH (checked with
INFO commandstats).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engineio_wsgi.cluster.connect import redis_client  # noqa: E402
from engineio_wsgi.cluster.inbox import Inbox, Sender  # noqa: E402
from tests.cluster.services import RedisServer, temp_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--messages', type=int, default=2000)
    parser.add_argument('--size', type=int, default=100)
    args = parser.parse_args()
    directory = temp_dir('eio-bench-redis-')
    server = RedisServer(directory)
    server.start()
    try:
        arrived = threading.Event()
        times: list[float] = []
        count = [0]

        def handler(source: str, payload: bytes) -> None:
            count[0] += 1
            arrived.set()

        inbox = Inbox(redis_client(server.url), 'bnch', handler)
        inbox.start()
        inbox.subscribed.wait(10)
        client = redis_client(server.url)
        sender = Sender(client, 'sndr')
        payload = b'x' * args.size
        calls = int(client.info('commandstats').get('cmdstat_publish', {}).get('calls', 0))
        for _ in range(args.messages):   # one at a time: the latency of one
            arrived.clear()
            started = time.perf_counter()
            sender.send('bnch', payload)
            arrived.wait(5)
            times.append(time.perf_counter() - started)
        published = int(client.info('commandstats')['cmdstat_publish']['calls']) - calls
        count[0] = 0
        started = time.perf_counter()
        for _ in range(args.messages):   # back to back: the rate of one sender
            sender.send('bnch', payload)
        while count[0] < args.messages and time.perf_counter() - started < 30:
            time.sleep(0.001)
        rate = count[0] / (time.perf_counter() - started)
        times.sort()
        print(f'{args.messages} messages of {args.size} bytes, one sender, one inbox')
        print(f'latency send -> handler: p50 {statistics.median(times) * 1e3:.3f} ms, '
              f'p99 {times[int(len(times) * 0.99)] * 1e3:.3f} ms')
        print(f'PUBLISH per message: {published / args.messages:.2f}')
        print(f'back to back: {rate:.0f} messages/s')
        inbox.stop()
        client.close()
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == '__main__':
    main()
