"""Server-specific access to the client connection behind a WSGI request.

Everything that depends on which WSGI server runs the application lives here:
finding the raw client socket, telling the server that a WebSocket took the
connection over (so it writes nothing more on it), and describing what the
server can do.

Per server (checked against werkzeug 3.1, gunicorn 27, gevent 26 and
gevent-websocket 0.10, with and without wrappers: a generator-style
middleware, an exception-recording one, werkzeug's debugger):

Takeover, everywhere: once the WebSocket ended, the socket is shut down (both
directions) and the application returns normally: ``start_response('101
Switching Protocols', [])`` and an empty body (:func:`finish_takeover`). No
wrapper sees an exception. The server's write of that response fails with
``EPIPE`` on the shut-down socket, which each server below takes as "client
gone": nothing is written, nothing logged above DEBUG, the connection is not
reused; its request log shows the 101. (Raising instead, the former signal,
looked like an application error to every wrapper: werkzeug's debugger made
it a 500 with a traceback. ``StopIteration`` becomes ``RuntimeError`` inside
generator middleware, PEP 479; returning without ``start_response`` makes
werkzeug and gunicorn write a 500.)

werkzeug (threaded dev server)
    Socket: ``environ['werkzeug.socket']``.
    Takeover: the failed write is a ``ConnectionError``, handed to
    ``connection_dropped`` (silent); the request log line says 101. Its
    keep-alive loop then reads the socket once more and finds it shut.

gunicorn, ``gthread``, ``gevent`` (and ``sync``) workers
    Socket: ``environ['gunicorn.socket']``.
    Takeover: ``EPIPE`` is logged at DEBUG ("Ignoring EPIPE") and the
    connection closed; the access log says 101.

gevent.pywsgi (also gunicorn's ``GeventPyWSGIWorker``)
    Socket: not in the environ. For a request asking for an upgrade,
    ``environ['wsgi.input']`` is the handler's buffered reader itself, for
    other requests a ``gevent.pywsgi.Input`` whose ``rfile`` is that reader;
    either way ``reader.raw._sock`` is the connection socket (gevent's).
    Takeover: ``EPIPE`` is in pywsgi's ignored errors and sets
    ``close_connection``; the request log says 101.

gevent-websocket (``WebSocketHandler``, with pywsgi or as gunicorn worker)
    The handler has already written the 101 and put its WebSocket object in
    ``environ['wsgi.websocket']``; the socket is that object's
    ``handler.socket`` (the same as through ``wsgi.input``). The app runs as
    ``list(app(environ, dummy_start_response))`` inside the handler, which
    writes and logs nothing more. Its WebSocket object is marked closed so
    that the handler does not try to send a close frame of its own.

Anything else (wsgiref, Django's runserver, waitress, uWSGI, ...): no socket
access we can rely on, so no WebSocket; long-polling still works where the
server is concurrent.
"""

from __future__ import annotations

import array
import errno
import fcntl
import logging
import select
import socket
import termios
from collections.abc import Iterable
from typing import Any, NamedTuple

from .backends import detect_async_mode

__all__ = [
    'ServerInfo',
    'abandon_body',
    'WebSocketTakenOver',
    'describe',
    'finish_takeover',
    'is_gevent_socket',
    'peer_gone',
    'raw_socket',
    'server_kind',
    'take_read_ahead',
]

#: environ key set once the request body was read in full
BODY_READ = 'engineio_wsgi.body_read'

logger = logging.getLogger(__name__)

WERKZEUG = 'werkzeug'
GUNICORN = 'gunicorn'
PYWSGI = 'gevent.pywsgi'
GEVENT_WEBSOCKET = 'gevent-websocket'
UNKNOWN = 'unknown'

_ADVICE = (
    'run the application under gunicorn (-k gthread with enough --threads, '
    'or -k gevent), gevent.pywsgi, or werkzeug\'s threaded development server'
)


class ServerInfo(NamedTuple):
    """What :func:`describe` reports about the server behind a request."""

    name: str
    can_websocket: bool
    why_not: str | None
    concurrent: bool


class WebSocketTakenOver(BrokenPipeError):
    """Raised out of the application when the client left during the
    WebSocket handshake, before its 101 could be written.

    Servers treat an ``EPIPE`` as a client that went away: they close the
    connection quietly and write nothing more on it.
    """

    def __init__(self) -> None:
        super().__init__(errno.EPIPE, 'connection taken over by a WebSocket')


def _pywsgi_reader_socket(environ: dict[str, Any]) -> Any:
    """The socket under gevent.pywsgi's ``wsgi.input``, or None."""
    stream = environ.get('wsgi.input')
    if stream is None:
        return None
    # gevent.pywsgi.Input wraps the handler's reader in ``rfile``.
    if type(stream).__module__ == 'gevent.pywsgi':
        stream = getattr(stream, 'rfile', None)
    raw = getattr(stream, 'raw', None)
    sock = getattr(raw, '_sock', None)
    if sock is None or not is_gevent_socket(sock):
        return None
    return sock


def is_gevent_socket(sock: Any) -> bool:
    """True for gevent's cooperative socket objects (patched or not)."""
    return type(sock).__module__.startswith('gevent')


def server_kind(environ: dict[str, Any]) -> str:
    """Which connection handling is behind this request (module constants)."""
    if 'wsgi.websocket' in environ:
        return GEVENT_WEBSOCKET
    if environ.get('werkzeug.socket') is not None:
        return WERKZEUG
    if environ.get('gunicorn.socket') is not None:
        return GUNICORN
    if _pywsgi_reader_socket(environ) is not None:
        return PYWSGI
    return UNKNOWN


def raw_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client connection's socket, or None where the server hides it."""
    sock = environ.get('werkzeug.socket')
    if sock is not None:
        return sock
    sock = environ.get('gunicorn.socket')
    if sock is not None:
        return sock
    ws = environ.get('wsgi.websocket')
    if ws is not None:
        handler = getattr(ws, 'handler', None)
        sock = getattr(handler, 'socket', None)
        if sock is not None:
            return sock
    return _pywsgi_reader_socket(environ)


def abandon_body(environ: dict[str, Any]) -> None:
    """A request is refused before its body was read in full: when the rest
    of the body has not arrived yet, read nothing more from the connection
    (the response can still be written).

    gunicorn reads the rest of an unread body before it reuses or closes a
    connection, so that closing does not reset it under the response; its
    gthread worker waits for that on its one main thread, up to 2 seconds
    per connection. A client that keeps trickling a body after its refusal
    would stall every other request of the worker, pongs included, and
    healthy sessions would time out. With the read side shut down that wait
    ends at once. A body that is all there already is left to gunicorn, so a
    kept-alive connection goes on serving the client's next request.
    """
    if server_kind(environ) != GUNICORN:
        return
    sock = environ['gunicorn.socket']
    reader = getattr(environ.get('wsgi.input'), 'reader', None)
    remaining = getattr(reader, 'length', None)     # None: chunked, unknown length
    if isinstance(remaining, int) and _available(reader, sock) >= remaining:
        return
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:     # already shut down, or the peer is gone
        pass


def _available(reader: Any, sock: Any) -> int:
    """Body bytes gunicorn holds already plus those waiting in the socket."""
    buf = getattr(getattr(reader, 'unreader', None), 'buf', None)
    held = len(buf.getvalue()) if buf is not None else 0
    waiting = array.array('i', [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, waiting)
    except (OSError, ValueError):
        return held
    return held + waiting[0]


def take_read_ahead(environ: dict[str, Any], sock: Any) -> bytes:
    """Bytes the server already read from the connection behind the request head.

    A client may send its first WebSocket frames right behind the upgrade
    request, without waiting for the 101; the server's own reader has then
    buffered them, and reading the socket would skip them. gunicorn keeps them
    in its parser's unreader, werkzeug and gevent.pywsgi (with or without
    gevent-websocket) in the handler's buffered ``rfile``. Never blocks.
    """
    stream = environ.get('wsgi.input')
    unreader = getattr(getattr(stream, 'reader', None), 'unreader', None)
    if unreader is not None:            # gunicorn: Body -> LengthReader -> Unreader
        take = getattr(unreader, 'take_buffered', None)
        if take is not None:
            return bytes(take())
        buf = getattr(unreader, 'buf', None)
        if buf is None:
            return b''
        data = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return bytes(data)
    reader = _handler_reader(environ)
    if reader is None:
        return b''
    # read1() returns what the buffer holds without a second look at the
    # socket; non-blocking, so an empty buffer returns at once
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        return bytes(reader.read1(65536) or b'')
    except (BlockingIOError, InterruptedError):
        return b''
    finally:
        sock.settimeout(timeout)


def _handler_reader(environ: dict[str, Any]) -> Any:
    """The request handler's buffered reader over the connection, or None."""
    ws = environ.get('wsgi.websocket')
    if ws is not None:                  # gevent-websocket
        reader = getattr(getattr(ws, 'handler', None), 'rfile', None)
    else:
        reader = environ.get('wsgi.input')
        if type(reader).__module__ == 'gevent.pywsgi':   # pywsgi's Input wraps it
            reader = getattr(reader, 'rfile', None)
    if reader is None or not hasattr(reader, 'read1'):
        return None
    return reader


def _software(environ: dict[str, Any]) -> str:
    return str(environ.get('SERVER_SOFTWARE') or '').strip()


def describe(environ: dict[str, Any]) -> ServerInfo:
    """Describe the server behind ``environ`` for diagnostics.

    ``concurrent`` is False for servers that handle one request at a time
    (``wsgi.multithread`` false and no gevent); neither long-polling nor
    WebSocket can work there. ``can_websocket`` also needs socket access.
    """
    kind = server_kind(environ)
    sock = raw_socket(environ)
    software = _software(environ)
    gevent = detect_async_mode(sock) == 'gevent'
    concurrent = bool(environ.get('wsgi.multithread')) or gevent

    if kind == WERKZEUG:
        name = 'werkzeug'
    elif kind == GUNICORN:
        if gevent:
            name = 'gunicorn (gevent worker)'
        elif concurrent:
            name = 'gunicorn'
        else:   # the worker class is not in the environ; this is what sync looks like
            name = 'gunicorn (sync worker)'
    elif kind == PYWSGI:
        name = ('gunicorn (gevent pywsgi worker)'
                if 'gunicorn' in software.lower() else 'gevent.pywsgi')
    elif kind == GEVENT_WEBSOCKET:
        name = 'gevent-websocket'
    else:
        name = software or 'unknown WSGI server'

    why_not: str | None = None
    if not concurrent:
        why_not = (
            f'{name} handles one request at a time (wsgi.multithread is false '
            'and gevent is not in use): a long-poll or a WebSocket would hold '
            f'the only worker; {_ADVICE}'
        )
    elif kind == UNKNOWN or sock is None:
        why_not = (
            f'{name} gives the application no access to the connection '
            f'socket, so WebSocket is unavailable; {_ADVICE}'
        )
    return ServerInfo(name, why_not is None, why_not, concurrent)


def mark_gevent_websocket_done(environ: dict[str, Any]) -> None:
    """Stop gevent-websocket from writing its own close frame later."""
    ws = environ.get('wsgi.websocket')
    if ws is not None:
        try:
            ws.closed = True
        except AttributeError:  # pragma: no cover - not gevent-websocket's class
            logger.debug('cannot mark %r closed', ws)


def finish_takeover(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """End the WSGI call of a request whose connection a WebSocket used.

    Write ``return finish_takeover(environ, start_response)`` once the
    WebSocket is over (``receive()`` returned None, or ``close()`` returned
    in the request's thread). The socket is shut down (both directions),
    then the call ends as a normal response: status ``101 Switching
    Protocols``, no headers, no body. To every wrapper around the
    application (error reporters, request loggers, generator middleware,
    werkzeug's debugger) that is a request that succeeded; request logs show
    101. The server's attempt to write that response meets the shut-down
    socket: ``EPIPE``, which every supported server takes as "client gone"
    (nothing written, nothing logged above DEBUG, connection not reused).
    """
    if server_kind(environ) == GEVENT_WEBSOCKET:
        mark_gevent_websocket_done(environ)
    sock = raw_socket(environ)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:     # already shut down, or the peer is gone
            pass
    start_response('101 Switching Protocols', [])
    return []


_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, 'POLLRDHUP', 0)


def peer_gone(sock: Any) -> bool:
    """True when the client closed this connection; never blocks.

    Used on a waiting long-poll whose client may have dropped it. A readable
    socket is peeked at: end of file means gone, data means alive.
    """
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | _GONE)
        events = poller.poll(0)
        if not events:
            return False
        if events[0][1] & _GONE:
            return True
        return sock.recv(1, socket.MSG_PEEK) == b''
    except (OSError, ValueError):
        return True
