"""Serve a WSGI application on 127.0.0.1 with a free port, for tests/live.py.

    python tests/apps/runners.py KIND MODULE:ATTRIBUTE

KIND is one of:

    werkzeug     werkzeug's development server, one thread per request
    pywsgi       gevent.pywsgi.WSGIServer, after gevent's monkey.patch_all()
    pywsgi-gws   the same with geventwebsocket's WebSocketHandler

It listens on a free port, or on ``$EIO_RUNNER_PORT`` when set. Once the
socket is bound this prints ``LISTENING <port>`` on stdout, then
serves until the process is terminated. Run it as a file (not with -m) so that
gevent patches the process before anything else is imported.
"""

import os
import sys

# Running as a file puts this directory first on sys.path; the application is
# imported by its package name from the repository root (PYTHONPATH) instead.
if sys.path and os.path.abspath(sys.path[0] or '.') == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

KINDS = ('werkzeug', 'pywsgi', 'pywsgi-gws')


def _usage() -> None:
    print(__doc__, file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in KINDS:
        _usage()
    kind, target = argv
    if kind.startswith('pywsgi'):
        from gevent import monkey

        monkey.patch_all()

    import importlib
    import logging
    import signal

    module_name, _, attribute = target.partition(':')
    app = getattr(importlib.import_module(module_name), attribute or 'app')

    def stop(signum, frame):
        raise SystemExit(0)

    if kind == 'werkzeug':
        from werkzeug.serving import make_server

        if not logging.root.handlers:
            logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        server = make_server('127.0.0.1', _port(), app, threaded=True)
        print(f'LISTENING {server.server_port}', flush=True)
        signal.signal(signal.SIGTERM, stop)
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return

    from gevent.pywsgi import WSGIServer

    handler_class = None
    if kind == 'pywsgi-gws':
        from geventwebsocket.handler import WebSocketHandler

        handler_class = WebSocketHandler
    extra = {'handler_class': handler_class} if handler_class else {}
    server = WSGIServer(('127.0.0.1', _port()), app, log=sys.stderr, error_log=sys.stderr,
                        **extra)
    server.init_socket()
    print(f'LISTENING {server.server_port}', flush=True)
    server.serve_forever()


def _port() -> int:
    # EIO_RUNNER_PORT: listen there (to restart a server where its clients expect it)
    return int(os.environ.get('EIO_RUNNER_PORT') or 0)


if __name__ == '__main__':
    main(sys.argv[1:])
