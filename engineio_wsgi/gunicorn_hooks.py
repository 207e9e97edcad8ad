"""gunicorn server hooks: close every session when a worker is told to stop.

A library cannot catch the worker's SIGTERM by itself, so this hook does:
when the worker starts its graceful shutdown, every ``Server`` in the process
runs ``shutdown()`` (clients receive the close packet ``1``), while gunicorn
waits for the open requests to end (``--graceful-timeout``). A WebSocket is
no open request (the engine's I/O loop serves it): once gunicorn's own wait is
over, the worker waits for ``shutdown()`` too, until every session ended or
``shutdown_timeout`` passed.

Use it without a config file::

    gunicorn -k gevent -w 1 -c python:engineio_wsgi.gunicorn_hooks module:app

or from your own ``gunicorn.conf.py``::

    from engineio_wsgi.gunicorn_hooks import post_worker_init  # noqa: F401
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from .backends import create_backend

logger = logging.getLogger(__name__)


def post_worker_init(worker: Any) -> None:
    """Wrap the worker's SIGTERM handler so that it also shuts sessions down,
    and its run so that it waits for that before the worker exits."""
    graceful_exit = worker.handle_exit
    run = worker.run
    # a greenlet on the gevent worker (its signal handlers run in the hub,
    # which must not block), a thread on the others
    backend = create_backend(None)
    shutting_down: list[Any] = []

    def handle_exit(sig: int, frame: Any) -> None:
        graceful_exit(sig, frame)
        if shutting_down:
            return
        # not in the signal handler itself: shutdown() waits for clients
        if backend.name == 'gevent':
            shutting_down.append(backend.spawn(shutdown_all))
        else:
            task = threading.Thread(target=shutdown_all, name='engineio_wsgi-shutdown')
            shutting_down.append(task)
            task.start()

    def run_then_wait() -> None:
        run()
        for task in shutting_down:
            task.join()   # bounded by each server's shutdown_timeout

    worker.handle_exit = handle_exit
    worker.run = run_then_wait
    signal.signal(signal.SIGTERM, handle_exit)
    signal.siginterrupt(signal.SIGTERM, False)


def shutdown_all() -> None:
    from .server import running_servers
    for server in running_servers():
        try:
            server.shutdown()
        except Exception:
            logger.exception('shutting the Engine.IO server down failed')
