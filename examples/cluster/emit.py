"""Send a message to one session of the cluster from a process that serves
nothing (a cron job, a Celery task): ``engineio_wsgi.cluster.Emitter``.

    REDIS_URL=redis://127.0.0.1:6379/0 python emit.py SID 'hello from outside'

The sid is shown on the demo page. Prints whether the session's owner took
the message (False: that worker is gone, the client will reconnect).
"""

from __future__ import annotations

import os
import sys

from engineio_wsgi.cluster import ClusterUnavailable, Emitter


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    emitter = Emitter(os.environ.get('REDIS_URL', 'redis://127.0.0.1:6379/0'))
    try:
        taken = emitter.send(argv[1], argv[2])
    except ClusterUnavailable as exc:
        print(f'Redis is unreachable: {exc}', file=sys.stderr)
        return 1
    print('delivered to the owner' if taken else 'no such session: its worker is gone')
    return 0 if taken else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
