"""HTTP responses: status lines, JSON error bodies, compression, cookies."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from .errors import RequestError

Headers = list[tuple[str, str]]
StartResponse = Callable[..., Any]

_STATUS = {s.value: f'{s.value} {s.phrase}' for s in HTTPStatus}
TEXT = ('Content-Type', 'text/plain; charset=UTF-8')
JSON = ('Content-Type', 'application/json')
NO_STORE = ('Cache-Control', 'no-store')


def respond(start_response: StartResponse, status: int, headers: Headers,
            body: bytes = b'') -> Iterable[bytes]:
    headers.append(('Content-Length', str(len(body))))
    start_response(_STATUS[status], headers)
    return [body]


def error_body(error: RequestError) -> bytes:
    # the message is ours only: never the client's sid or other input
    return json.dumps({'code': error.code, 'message': error.message}).encode()


def render_error(start_response: StartResponse, error: RequestError,
                 headers: Headers) -> Iterable[bytes]:
    headers.append(JSON)
    return respond(start_response, error.status, headers, error_body(error))


def compress(body: bytes, accept_encoding: str, threshold: int,
             headers: Headers) -> bytes:
    """Compress with the best encoding the client accepts (its
    ``Accept-Encoding``); adds the headers."""
    if len(body) < threshold:
        return body
    encoding = choose_encoding(accept_encoding)
    if encoding is None:
        return body
    headers.append(('Content-Encoding', encoding))
    headers.append(('Vary', 'Accept-Encoding'))
    if encoding == 'gzip':
        return gzip.compress(body, compresslevel=6, mtime=0)
    return zlib.compress(body, 6)


def choose_encoding(accept: str) -> str | None:
    """'gzip' or 'deflate' by the client's q-values (gzip on a tie), or None."""
    if not accept:
        return None
    quality: dict[str, float] = {}
    for item in accept.split(','):
        name, _, params = item.partition(';')
        name = name.strip().lower()
        q = 1.0
        for param in params.split(';'):
            key, _, value = param.partition('=')
            if key.strip().lower() == 'q':
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[name] = q
    star = quality.get('*', 0.0)
    best = None
    best_q = 0.0
    for encoding in ('gzip', 'deflate'):
        q = quality.get(encoding, star)
        if q > best_q:
            best, best_q = encoding, q
    return best


def cookie_parts(options: dict[str, Any]) -> tuple[str, str]:
    """The cookie's name and its attributes as ``'; Path=/; ...'``.

    A callable value is called now, once per handshake (python-engineio's rule),
    so that e.g. ``Expires`` can move with time.
    """
    attrs = {'path': '/', 'httponly': True, 'samesite': 'Lax', **options}
    name = attrs.pop('name')
    parts = ['']
    for key, value in attrs.items():
        if callable(value):
            value = value()
        key = key.lower()
        if value is None or value is False:
            continue
        label = _COOKIE_ATTRS.get(key, key)
        if value is True:
            parts.append(label)
        else:
            text = str(value)
            if any(c in text for c in ';\r\n'):
                raise ValueError(f'cookie attribute {key} has an invalid character')
            parts.append(f'{label}={text}')
    return name, '; '.join(parts)


_COOKIE_ATTRS = {'path': 'Path', 'httponly': 'HttpOnly', 'samesite': 'SameSite',
                 'secure': 'Secure', 'domain': 'Domain', 'max_age': 'Max-Age',
                 'max-age': 'Max-Age', 'expires': 'Expires'}
