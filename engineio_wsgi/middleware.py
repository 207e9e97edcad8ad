"""``WSGIApp``: Engine.IO traffic to the server, everything else to your app."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable
from typing import Any

from .response import StartResponse, respond
from .server import Server

WSGIApplication = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIApp:
    """Wrap a WSGI application (Flask, Django, ...) with an Engine.IO server.

    Flask: ``app.wsgi_app = WSGIApp(eio, app.wsgi_app)``;
    Django: ``application = WSGIApp(eio, get_wsgi_application())``.

    ``static_files`` maps URL paths to files, or URL prefixes (ending in ``/``)
    to folders; a value may be a path or a dict ``{'filename': ...,
    'content_type': ...}``. Requests are matched on ``PATH_INFO``, so mounting
    the whole app under a ``SCRIPT_NAME`` prefix works.
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
            found = self._static(path)
            if found is not None:
                return _serve_file(found, environ, start_response)
        if self.wsgi_app is not None:
            return self.wsgi_app(environ, start_response)
        return respond(start_response, 404, [('Content-Type', 'text/plain')], b'Not Found')

    def _static(self, path: str) -> tuple[str, str] | None:
        """(filename, content type) for a static URL path, or None."""
        entry = self.static_files.get(path)
        rest = ''
        if entry is None:
            for prefix in sorted(self.static_files, key=len, reverse=True):
                if prefix.endswith('/') and path.startswith(prefix):
                    entry, rest = self.static_files[prefix], path[len(prefix):]
                    break
            else:
                return None
        if isinstance(entry, dict):
            filename, content_type = entry['filename'], entry.get('content_type')
        else:
            filename, content_type = entry, None
        if rest or filename.endswith(os.sep) or os.path.isdir(filename):
            root = os.path.realpath(filename)
            target = os.path.realpath(os.path.join(root, rest or 'index.html'))
            if target != root and not target.startswith(root + os.sep):
                return None  # a path escaping the folder
            if os.path.isdir(target):
                target = os.path.join(target, 'index.html')
            filename, content_type = target, None
        if not os.path.isfile(filename):
            return None
        if content_type is None:
            content_type = mimetypes.guess_type(filename)[0] or 'application/octet-stream'
        return filename, content_type


def _serve_file(found: tuple[str, str], environ: dict[str, Any],
                start_response: StartResponse) -> Iterable[bytes]:
    filename, content_type = found
    if environ.get('REQUEST_METHOD', 'GET') not in ('GET', 'HEAD'):
        return respond(start_response, 405, [('Allow', 'GET, HEAD')])
    with open(filename, 'rb') as f:
        body = f.read()
    if content_type.startswith('text/') or content_type in ('application/javascript',):
        if 'charset' not in content_type:
            content_type += '; charset=utf-8'
    headers = [('Content-Type', content_type)]
    if environ.get('REQUEST_METHOD') == 'HEAD':
        headers.append(('Content-Length', str(len(body))))
        start_response('200 OK', headers)
        return [b'']
    return respond(start_response, 200, headers, body)
