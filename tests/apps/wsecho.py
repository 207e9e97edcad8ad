"""A raw WSGI WebSocket echo app on engineio_wsgi.rfc6455, for the connection-layer tests.

Paths:
    /ws?id=ID&max=BYTES&deflate=1&ct=SECONDS  WebSocket echo (see commands below);
                                     ct is the close timeout
    /mw/ws?...                        the same behind a generator-style middleware
    /describe                         JSON of ServerAdapter(environ).describe()
    /adapter                          JSON of what Request(environ) and its adapter
                                      read (the body through the adapter)
    /adapter/gone?id=ID               log "PEER id=ID gone=False", then wait for the
                                      client to close: "PEER id=ID gone=True"

Every text message is echoed unchanged except these commands:
    __close               close (1000, 'bye') from the request thread
    __close_bg            close (1001, 'away') from another thread
    __flood T N S         T threads send N text messages of S bytes each at once,
                          message i of thread t is 't:i:' padded with chr(97+t);
                          then '__flood_done' once all threads finished
    __big N               send N bytes binary (bytes(range(256)) repeated)
    __info                send JSON {extensions, kind, upgraded, peer}
When the WebSocket ends the app logs ``WS END id=ID reason=... code=...`` to stderr.
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from engineio_wsgi import rfc6455
from engineio_wsgi.request import Request
from engineio_wsgi.wsgi_servers import ServerAdapter


def _spawn(func: Callable[..., Any], *args: Any) -> Any:
    """Start func in a thread, or a greenlet when gevent runs unpatched."""
    if os.environ.get('WSECHO_SPAWN') == 'gevent':
        import gevent
        return gevent.spawn(func, *args)
    thread = threading.Thread(target=func, args=args)
    thread.start()
    return thread


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _json(start_response: Callable[..., Any], status: str, payload: Any,
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = json.dumps(payload).encode('utf-8')
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(body)))] + list(headers or []))
    return [body]


def _flood(ws: rfc6455.WSConnection, threads: int, count: int, size: int) -> None:
    def worker(t: int) -> None:
        pad = chr(97 + t)
        for i in range(count):
            head = f'{t}:{i}:'
            try:
                ws.send(head + pad * max(0, size - len(head)))
            except ConnectionError:
                return

    workers = [_spawn(worker, t) for t in range(threads)]
    for w in workers:
        w.join()
    try:
        ws.send('__flood_done')
    except ConnectionError:
        pass


def _command(ws: rfc6455.WSConnection, request: Request, msg: str) -> None:
    parts = msg.split()
    if parts[0] == '__close':
        ws.close(1000, 'bye')
    elif parts[0] == '__close_bg':
        _spawn(ws.close, 1001, 'away')
    elif parts[0] == '__flood':
        threads, count, size = (int(p) for p in parts[1:4])
        _spawn(_flood, ws, threads, count, size)
    elif parts[0] == '__big':
        n = int(parts[1])
        block = bytes(range(256))
        ws.send((block * (n // 256 + 1))[:n])
    elif parts[0] == '__info':
        adapter = request.adapter
        ws.send(json.dumps({'extensions': ws.extensions, 'kind': adapter.kind,
                            'upgraded': adapter.upgraded,
                            'peer': list(adapter.sock.getpeername())}))
    else:
        ws.send(msg)


def websocket_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get('QUERY_STRING', ''))
    ident = query.get('id', ['-'])[0]
    max_size = int(query.get('max', ['1000000'])[0])
    compression = query.get('deflate', ['0'])[0] == '1'
    close_timeout = float(query.get('ct', ['3'])[0])
    request = Request(environ)
    try:
        ws = rfc6455.accept(request, max_message_size=max_size, compression=compression,
                            close_timeout=close_timeout)
    except rfc6455.HandshakeError as exc:
        return _json(start_response, f'{exc.status} Bad Request',
                     {'code': 3, 'message': exc.message}, exc.headers)
    try:
        while True:
            msg = ws.receive()
            if msg is None:
                break
            if isinstance(msg, str) and msg.startswith('__'):
                _command(ws, request, msg)
            else:
                ws.send(msg)
    except ConnectionError:
        pass
    finally:
        ws.close()
    _log(f'WS END id={ident} reason={ws.end_reason} code={ws.close_code}')
    return request.adapter.finish_takeover(start_response)


def adapter_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    request = Request(environ)
    adapter = request.adapter
    length = request.content_length
    body = adapter.body.read(int(length)) if length else b''
    sock = adapter.sock
    return _json(start_response, '200 OK', {
        'kind': adapter.kind,
        'peer': None if sock is None else list(sock.getpeername()),
        'upgraded': adapter.upgraded,
        'asks_for_upgrade': request.asks_for_upgrade,
        'method': request.method,
        'raw_method': request.raw_method,
        'path': request.path,
        'query_string': request.query_string,
        'http_version': request.http_version,
        'origin': request.origin,
        'own_origin': request.own_origin,
        'content_type': request.content_type,
        'content_length': request.content_length,
        'chunked': request.chunked,
        'accept_encoding': request.accept_encoding,
        'access_control_request_headers': request.access_control_request_headers,
        'client': request.client_address(()),
        'client_behind_proxy': request.client_address(('127.0.0.1',)),
        'body': body.decode(),
    })


def _wait_readable(sock: Any, seconds: float) -> None:
    """Until the client's leaving (end of file or reset) makes the socket readable."""
    if os.environ.get('WSECHO_SPAWN') == 'gevent':
        import gevent.select
        gevent.select.select([sock], [], [], seconds)
    else:
        select.select([sock], [], [], seconds)


def gone_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Wait (up to 5 s) until the client closed the connection."""
    request = Request(environ)
    ident = parse_qs(request.query_string).get('id', ['-'])[0]
    adapter = request.adapter
    _log(f'PEER id={ident} gone={adapter.peer_gone()}')
    if adapter.sock is not None:
        _wait_readable(adapter.sock, 5)
    _log(f'PEER id={ident} gone={adapter.peer_gone()}')
    return adapter.finish_takeover(start_response)   # silent on a closed connection


def generator_middleware(inner: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """A middleware written as a generator, as many are."""
    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = inner(environ, start_response)
        try:
            yield from result
        finally:
            close = getattr(result, 'close', None)
            if close is not None:
                close()
    return wrapper


_wrapped = generator_middleware(websocket_app)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get('PATH_INFO', '')
    if path == '/ws':
        return websocket_app(environ, start_response)
    if path == '/mw/ws':
        return _wrapped(environ, start_response)
    if path == '/adapter':
        return adapter_app(environ, start_response)
    if path == '/adapter/gone':
        return gone_app(environ, start_response)
    if path == '/describe':
        return _json(start_response, '200 OK', ServerAdapter(environ).describe()._asdict())
    body = b'fallback'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
