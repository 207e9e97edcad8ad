"""``WSGIApp``: Engine.IO traffic to the server, everything else to your app."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import static
from .response import StartResponse, respond
from .server import Server

WSGIApplication = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIApp:
    """Wrap a WSGI application (Flask, Django, ...) with an Engine.IO server.

    Flask: ``app.wsgi_app = WSGIApp(eio, app.wsgi_app)``;
    Django: ``application = WSGIApp(eio, get_wsgi_application())``.

    ``static_files`` maps URL paths to files and URL prefixes to folders, by
    python-engineio's rules (see ``static.py``). Requests are matched on
    ``PATH_INFO``, so mounting the whole app under a ``SCRIPT_NAME`` prefix works.
    """

    def __init__(self, engineio_app: Server, wsgi_app: WSGIApplication | None = None,
                 static_files: dict[str, Any] | None = None,
                 engineio_path: str = 'engine.io') -> None:
        self.engineio_app = engineio_app
        self.wsgi_app = wsgi_app
        path = '/' + engineio_path.strip('/')
        self._path = path
        self._prefix = path + '/'
        self.static_files = static_files or {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get('PATH_INFO') or '/'
        if path == self._path or path.startswith(self._prefix):
            return self.engineio_app.handle_request(environ, start_response)
        if self.static_files:
            found = static.resolve(path, self.static_files)
            if found is not None:
                return _serve_file(found, environ, start_response)
        if self.wsgi_app is not None:
            return self.wsgi_app(environ, start_response)
        return respond(start_response, 404, [('Content-Type', 'text/plain')], b'Not Found')


def _serve_file(found: static.StaticFile, environ: dict[str, Any],
                start_response: StartResponse) -> Iterable[bytes]:
    if environ.get('REQUEST_METHOD', 'GET') not in ('GET', 'HEAD'):
        return respond(start_response, 405, [('Allow', 'GET, HEAD')])
    with open(found.filename, 'rb') as f:
        body = f.read()
    headers = [('Content-Type', found.content_type)]
    if environ.get('REQUEST_METHOD') == 'HEAD':
        headers.append(('Content-Length', str(len(body))))
        start_response('200 OK', headers)
        return [b'']
    return respond(start_response, 200, headers, body)
