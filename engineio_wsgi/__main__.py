"""``python -m engineio_wsgi``: a demo server that echoes every message.

Runs on gevent (monkey-patched here, before anything else is imported) when it
is installed, else on threads.

The demo page uses the official browser client, engine.io-client 6: the file
given with ``--client-js``, else ``node_modules/engine.io-client/dist/engine.io.min.js``
in the current directory when it exists (``npm ci`` in the repository puts it
there), else the page loads it from a public CDN.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

#: the browser build of the official client, where ``npm ci`` installs it
LOCAL_CLIENT_JS = os.path.join('node_modules', 'engine.io-client', 'dist', 'engine.io.min.js')
#: used when there is no local copy; the hash pins the exact file (keep the
#: version and hash the same as package-lock.json's: a test checks)
CDN_CLIENT_VERSION = '6.6.8'
CDN_CLIENT_JS = (f'https://cdn.jsdelivr.net/npm/engine.io-client@{CDN_CLIENT_VERSION}'
                 '/dist/engine.io.min.js')
CDN_CLIENT_JS_INTEGRITY = 'sha384-2ig77DX+q1NrLcOc4w4VZOcOMb+9V0gKkwyL2bI4ShQ9XyWKzy9xPtshGU7Hh7re'
#: where the page finds a local copy, relative to the page
CLIENT_JS_URL = 'client/engine.io.min.js'


LOG_LEVELS = ('debug', 'info', 'warning', 'error', 'critical')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='engineio-wsgi', description='Serve an Engine.IO echo demo.')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: %(default)s)')
    parser.add_argument('--port', type=int, default=5000,
                        help='0 picks a free one (default: %(default)s)')
    parser.add_argument('--async-mode', choices=('gevent', 'threading'), default=None,
                        help='default: gevent when installed, else threading')
    parser.add_argument('--ping-interval', type=float, default=25.0, metavar='SECONDS',
                        help='time between heartbeats (default: %(default)s)')
    parser.add_argument('--ping-timeout', type=float, default=20.0, metavar='SECONDS',
                        help='time a client has to answer one (default: %(default)s)')
    parser.add_argument('--max-http-buffer-size', type=int, default=1_000_000, metavar='BYTES',
                        help='largest message or POST body (default: %(default)s)')
    parser.add_argument('--cors-allowed-origins', action='append', metavar='ORIGIN',
                        help="repeatable; '*' allows any origin (default: same origin)")
    parser.add_argument('--path', default='engine.io',
                        help='Engine.IO URL path (default: %(default)s)')
    parser.add_argument('--client-js', metavar='PATH',
                        help='the browser build of engine.io-client 6 (engine.io.min.js) to serve '
                             'with the page, or "cdn" to load it from a CDN; default: '
                             f'{LOCAL_CLIENT_JS} in the current directory when present, '
                             'else the CDN')
    parser.add_argument('--log-level', default='info', type=str.lower, choices=LOG_LEVELS,
                        metavar='{' + ','.join(LOG_LEVELS) + '}',
                        help='(default: %(default)s)')
    return parser.parse_args(argv)


def gevent_available() -> bool:
    try:
        import gevent  # noqa: F401
    except ImportError:
        return False
    return True


def find_client_js(option: str | None) -> str | None:
    """The local client file to serve, or None for the CDN. Exits if ``option`` is missing."""
    if option == 'cdn':
        return None
    if option:
        if not os.path.isfile(option):
            raise SystemExit(f'--client-js: no such file: {option}')
        return os.path.abspath(option)
    return os.path.abspath(LOCAL_CLIENT_JS) if os.path.isfile(LOCAL_CLIENT_JS) else None


def client_version(filename: str) -> str | None:
    """The version in the banner comment of an engine.io-client build, if any."""
    with open(filename, 'rb') as f:
        found = re.search(rb'Engine\.IO v(\d+\.\d+\.\d+\S*)', f.read(512))
    return found.group(1).decode('ascii', 'replace') if found else None


def render_page(client_js: str | None, engineio_path: str) -> bytes:
    """The demo page, with the script tag for the local client copy or the CDN."""
    if client_js:
        version = client_version(client_js)
        script = f'<script src="{CLIENT_JS_URL}"></script>'
        source = f'engine.io-client {version or "?"} (local copy)'
    else:
        script = (f'<script src="{CDN_CLIENT_JS}" integrity="{CDN_CLIENT_JS_INTEGRITY}" '
                  'crossorigin="anonymous"></script>')
        source = f'engine.io-client {CDN_CLIENT_VERSION} (CDN)'
    config = {'path': '/' + engineio_path.strip('/') + '/', 'client': source}
    here = os.path.join(os.path.dirname(__file__), 'demo', 'index.html')
    with open(here, encoding='utf-8') as f:
        page = f.read()
    page = page.replace('<!--CLIENT_SCRIPT-->', script)
    page = page.replace('{/*CONFIG*/}', json.dumps(config).replace('</', '<\\/'))
    page = page.replace('<!--CLIENT_SOURCE-->', html.escape(source))
    return page.encode('utf-8')


def demo_page(page: bytes) -> Callable[..., Iterable[bytes]]:
    """A WSGI app serving ``page`` at ``/`` (and ``/index.html``), 404 elsewhere."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get('PATH_INFO', '/') not in ('', '/', '/index.html'):
            start_response('404 Not Found', [('Content-Type', 'text/plain; charset=utf-8')])
            return [b'Not Found']
        if environ.get('REQUEST_METHOD', 'GET') not in ('GET', 'HEAD'):
            start_response('405 Method Not Allowed', [('Allow', 'GET, HEAD')])
            return [b'']
        start_response('200 OK', [('Content-Type', 'text/html; charset=utf-8'),
                                  ('Content-Length', str(len(page))),
                                  ('Cache-Control', 'no-cache')])
        return [b''] if environ.get('REQUEST_METHOD') == 'HEAD' else [page]
    return app


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

    client_js = find_client_js(getattr(args, 'client_js', None))
    static: dict[str, Any] = {}
    if client_js:
        js = {'filename': client_js, 'content_type': 'application/javascript'}
        static['/' + CLIENT_JS_URL] = js
        if os.path.isfile(client_js + '.map'):
            static['/' + CLIENT_JS_URL + '.map'] = {'filename': client_js + '.map',
                                                    'content_type': 'application/json'}
    return WSGIApp(eio, demo_page(render_page(client_js, args.path)), static_files=static,
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
    client_js = find_client_js(args.client_js)
    if client_js:
        print(f'demo page client: {client_js}', flush=True)
    else:
        print(f'demo page client: {CDN_CLIENT_JS} (no local copy: run "npm ci" '
              'in the repository, or give --client-js PATH)', flush=True)
    if args.async_mode == 'gevent':
        serve_gevent(app, args.host, args.port)
    else:
        try:
            import werkzeug  # noqa: F401
        except ImportError:
            print('threading mode needs werkzeug: pip install werkzeug '
                  '(or install gevent: pip install gevent)', file=sys.stderr)
            return 1
        serve_threads(app, args.host, args.port)
    print('engineio_wsgi demo stopped', flush=True)
    return 0


def announce(host: str, port: int, mode: str) -> None:
    """Say where the demo serves, once it listens (the port is the real one for --port 0)."""
    print(f'engineio_wsgi demo on http://{host}:{port}/ ({mode}); Ctrl+C stops it', flush=True)


def serve_gevent(app: Any, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then stop without a traceback."""
    import signal

    import gevent
    from gevent.pywsgi import WSGIServer
    server = WSGIServer((host, port), app, log=None)
    server.start()
    # gevent would raise KeyboardInterrupt in its hub and print it; stop instead
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, server.stop, timeout=1)
    announce(host, server.server_port, 'gevent')
    server.serve_forever()


def serve_threads(app: Any, host: str, port: int) -> None:
    """Serve with werkzeug's threaded server until Ctrl+C (or SIGTERM)."""
    import signal

    from werkzeug.serving import make_server
    server = make_server(host, port, app, threaded=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    announce(host, server.server_port, 'threads')
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == '__main__':
    sys.exit(main())
