"""The same scenario on python-engineio and on engineio_wsgi, in-process (webtest).

Both servers run on threads. Each scenario returns a plain outcome (a tuple or
a string) so that a test can require both engines to produce the one expected
outcome; where the README lists a deliberate difference, the scenario maps
each engine's form of it to the same outcome and the test asserts each form.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import engineio
import webtest

import engineio_wsgi

PYEIO = 'python-engineio'
OURS = 'engineio_wsgi'
ENGINES = (PYEIO, OURS)
HANDSHAKE = '/engine.io/?EIO=4&transport=polling'
#: headers of a WebSocket handshake, for refusals answered before the 101
WEBSOCKET_HEADERS = {'Upgrade': 'websocket', 'Connection': 'Upgrade',
                     'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
                     'Sec-WebSocket-Version': '13'}


def fallback(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'fallback ' + environ['PATH_INFO'].encode()]


def make_server(engine: str, **options: Any) -> Any:
    if engine == PYEIO:
        # no sweeping task: these scenarios never wait for a timeout
        return engineio.Server(async_mode='threading', monitor_clients=False, **options)
    return engineio_wsgi.Server(async_mode='threading', shutdown_timeout=0.05, **options)


def make_wsgi_app(engine: str, eio: Any, *args: Any, **kwargs: Any) -> Any:
    cls = engineio.WSGIApp if engine == PYEIO else engineio_wsgi.WSGIApp
    return cls(eio, *args, **kwargs)


@contextlib.contextmanager
def running(engine: str, wsgi_app: Any = fallback, static_files: dict[str, Any] | None = None,
            engineio_path: str = 'engine.io', **options: Any) -> Iterator[tuple[Any, Any]]:
    """(server, webtest app) for one engine; the server is shut down afterwards."""
    eio = make_server(engine, **options)
    app = make_wsgi_app(engine, eio, wsgi_app, static_files=static_files,
                        engineio_path=engineio_path)
    try:
        yield eio, webtest.TestApp(app, extra_environ={'wsgi.multithread': True})
    finally:
        eio.shutdown()


def open_sid(res: Any) -> str | None:
    """The sid of a successful polling handshake response, else None."""
    if res.status_int != 200 or not res.body.startswith(b'0'):
        return None
    return json.loads(res.body[1:].split(b'\x1e')[0])['sid']


def refusal_message(engine: str, res: Any) -> Any:
    """The application's refusal message as each engine puts it on the wire.

    python-engineio answers 401 with the message as the whole JSON body;
    engineio_wsgi answers 403 with ``{"code": 4, "message": ...}`` (PROTOCOL.md).
    """
    assert res.content_type == 'application/json', res
    if engine == PYEIO:
        assert res.status_int == 401, res
        return json.loads(res.body)
    assert res.status_int == 403, res
    body = json.loads(res.body)
    assert set(body) == {'code', 'message'} and body['code'] == 4, body
    return body['message']


def session_count(engine: str, eio: Any) -> int:
    return len(eio.sockets) if engine == PYEIO else eio.session_count()


def outcomes(scenario: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The scenario's outcome on each engine."""
    return {engine: scenario(engine, *args, **kwargs) for engine in ENGINES}
