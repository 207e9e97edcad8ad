"""``python -m engineio_wsgi``: a demo server that echoes every message.

Runs on gevent (monkey-patched here, before anything else is imported) when it
is installed, else on threads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='engineio-wsgi', description='Serve an Engine.IO echo demo.')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=5000)
    parser.add_argument('--async-mode', choices=('gevent', 'threading'), default=None,
                        help='default: gevent when installed, else threading')
    parser.add_argument('--ping-interval', type=float, default=25.0, metavar='SECONDS')
    parser.add_argument('--ping-timeout', type=float, default=20.0, metavar='SECONDS')
    parser.add_argument('--max-http-buffer-size', type=int, default=1_000_000, metavar='BYTES')
    parser.add_argument('--cors-allowed-origins', action='append', metavar='ORIGIN',
                        help="repeatable; '*' allows any origin (default: same origin)")
    parser.add_argument('--path', default='engine.io', help='Engine.IO URL path')
    parser.add_argument('--log-level', default='info')
    return parser.parse_args(argv)


def gevent_available() -> bool:
    try:
        import gevent  # noqa: F401
    except ImportError:
        return False
    return True


def create_app(args: argparse.Namespace) -> Any:
    from . import Server, WSGIApp
    cors: Any = args.cors_allowed_origins
    if cors and '*' in cors:
        cors = '*'
    eio = Server(async_mode=args.async_mode, ping_interval=args.ping_interval,
                 ping_timeout=args.ping_timeout,
                 max_http_buffer_size=args.max_http_buffer_size,
                 cors_allowed_origins=cors)

    @eio.on('message')
    def echo(sid: str, data: str | bytes) -> None:
        eio.send(sid, data)

    here = os.path.join(os.path.dirname(__file__), 'demo')
    return WSGIApp(eio, static_files={'/': os.path.join(here, 'index.html')},
                   engineio_path=args.path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.async_mode is None:
        args.async_mode = 'gevent' if gevent_available() else 'threading'
    if args.async_mode == 'gevent':
        from gevent import monkey
        monkey.patch_all()
    logging.basicConfig(level=args.log_level.upper(),
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    app = create_app(args)
    url = f'http://{args.host}:{args.port}/'
    if args.async_mode == 'gevent':
        from gevent.pywsgi import WSGIServer
        server = WSGIServer((args.host, args.port), app, log=None)
        print(f'engineio_wsgi demo on {url} (gevent); Ctrl+C stops it', flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        return 0
    try:
        from werkzeug.serving import run_simple
    except ImportError:
        print('threading mode needs werkzeug: pip install werkzeug '
              '(or install gevent: pip install "engineio_wsgi[gevent]")', file=sys.stderr)
        return 1
    print(f'engineio_wsgi demo on {url} (threads); Ctrl+C stops it', flush=True)
    run_simple(args.host, args.port, app, threaded=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
