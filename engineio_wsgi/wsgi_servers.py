"""Server-specific access to the client connection behind a WSGI request.

Everything that depends on which WSGI server runs the application lives here:
finding the raw client socket, telling the server that a WebSocket took the
connection over (so it writes nothing more on it), and describing what the
server can do. Each request builds one :class:`ServerAdapter` from its environ
(which server kind it is, decided once); the layers below use only that
object, never the environ.

Per server (checked against werkzeug 3.1, gunicorn 27, gevent 26 and
gevent-websocket 0.10, with and without wrappers: a generator-style
middleware, an exception-recording one, werkzeug's debugger):

Takeover, everywhere: once the WebSocket ended, the socket is shut down (both
directions) and the application returns normally: ``start_response('101
Switching Protocols', [])`` and an empty body (:meth:`ServerAdapter.finish_takeover`). No
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
    A request saying ``Connection: close`` has its connection closed after
    the response, which does not say so unless the application does
    (:func:`telling_close` does; gunicorn and werkzeug say it themselves).
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
    'ServerAdapter',
    'ServerInfo',
    'WebSocketTakenOver',
    'is_gevent_socket',
    'peer_gone',
    'telling_close',
]

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
    """What :meth:`ServerAdapter.describe` reports about the server behind a request."""

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


def is_gevent_socket(sock: Any) -> bool:
    """True for gevent's cooperative socket objects (patched or not)."""
    return type(sock).__module__.startswith('gevent')


def _pywsgi_reader_socket(stream: Any) -> Any:
    """The socket under gevent.pywsgi's ``wsgi.input``, or None."""
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


class ServerAdapter:
    """What the WSGI server behind one request can do, read from its environ once.

    ``kind`` (module constants) and ``sock`` (the client connection's socket,
    None where the server hides it) are decided when the request arrives.
    Nothing here takes or needs a lock: an adapter belongs to its one
    request, and its methods act only on that request's connection.
    """

    __slots__ = ('kind', 'sock', 'body', 'body_read', '_environ', '_websocket')

    def __init__(self, environ: dict[str, Any]) -> None:
        self._environ = environ
        #: the request body stream (``wsgi.input``)
        self.body: Any = environ.get('wsgi.input')
        #: set once the request body was read in full
        self.body_read = False
        #: gevent-websocket's WebSocket object, when its handler upgraded the request
        self._websocket = environ.get('wsgi.websocket')
        werkzeug_sock = environ.get('werkzeug.socket')
        gunicorn_sock = environ.get('gunicorn.socket')
        sock = werkzeug_sock if werkzeug_sock is not None else gunicorn_sock
        if sock is None and self._websocket is not None:
            sock = getattr(getattr(self._websocket, 'handler', None), 'socket', None)
        if sock is None:
            sock = _pywsgi_reader_socket(self.body)
        if 'wsgi.websocket' in environ:
            kind = GEVENT_WEBSOCKET
        elif werkzeug_sock is not None:
            kind = WERKZEUG
        elif gunicorn_sock is not None:
            kind = GUNICORN
        elif sock is not None:
            kind = PYWSGI
        else:
            kind = UNKNOWN
        self.kind = kind
        self.sock: socket.socket | None = sock

    @property
    def upgraded(self) -> bool:
        """True when the server answered the WebSocket upgrade before the app ran.

        That is gevent-websocket's handler: an HTTP refusal is no longer
        possible; accept and close at once (e.g. ``close(1008, reason)``).
        """
        return self.kind == GEVENT_WEBSOCKET

    @property
    def input_terminated(self) -> bool:
        """The server ends the body stream itself (``wsgi.input_terminated``)."""
        return bool(self._environ.get('wsgi.input_terminated'))

    def peer_gone(self) -> bool:
        """True when the client closed this connection (False without a socket)."""
        return self.sock is not None and peer_gone(self.sock)

    def abandon_body(self) -> None:
        """A request is refused before its body was read in full: when the rest
        of the body has not arrived yet, read nothing more from the connection
        (the response can still be written). Nothing once the body was read.

        gunicorn reads the rest of an unread body before it reuses or closes a
        connection, so that closing does not reset it under the response; its
        gthread worker waits for that on its one main thread, up to 2 seconds
        per connection. A client that keeps trickling a body after its refusal
        would stall every other request of the worker, pongs included, and
        healthy sessions would time out. With the read side shut down that wait
        ends at once. A body that is all there already is left to gunicorn, so a
        kept-alive connection goes on serving the client's next request.
        """
        if self.kind != GUNICORN or self.body_read:
            return
        sock = self.sock
        reader = getattr(self.body, 'reader', None)
        remaining = getattr(reader, 'length', None)     # None: chunked, unknown length
        if isinstance(remaining, int) and _available(reader, sock) >= remaining:
            return
        try:
            sock.shutdown(socket.SHUT_RD)   # type: ignore[union-attr]
        except OSError:     # already shut down, or the peer is gone
            pass

    def take_read_ahead(self) -> bytes:
        """Bytes the server already read from the connection behind the request head.

        A client may send its first WebSocket frames right behind the upgrade
        request, without waiting for the 101; the server's own reader has then
        buffered them, and reading the socket would skip them. gunicorn keeps them
        in its parser's unreader, werkzeug and gevent.pywsgi (with or without
        gevent-websocket) in the handler's buffered ``rfile``. Never blocks.
        Call it from the request's thread, before anything else reads the socket.
        """
        unreader = getattr(getattr(self.body, 'reader', None), 'unreader', None)
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
        reader = self._handler_reader()
        sock = self.sock
        if reader is None or sock is None:
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

    def _handler_reader(self) -> Any:
        """The request handler's buffered reader over the connection, or None."""
        if self._websocket is not None:     # gevent-websocket
            reader = getattr(getattr(self._websocket, 'handler', None), 'rfile', None)
        else:
            reader = self.body
            if type(reader).__module__ == 'gevent.pywsgi':   # pywsgi's Input wraps it
                reader = getattr(reader, 'rfile', None)
        if reader is None or not hasattr(reader, 'read1'):
            return None
        return reader

    def mark_websocket_done(self) -> None:
        """Stop gevent-websocket from writing its own close frame later."""
        ws = self._websocket
        if ws is not None:
            try:
                ws.closed = True
            except AttributeError:  # pragma: no cover - not gevent-websocket's class
                logger.debug('cannot mark %r closed', ws)

    def finish_takeover(self, start_response: Any) -> Iterable[bytes]:
        """End the WSGI call of a request whose connection a WebSocket used.

        Write ``return adapter.finish_takeover(start_response)`` once the
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
        self.mark_websocket_done()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:     # already shut down, or the peer is gone
                pass
        start_response('101 Switching Protocols', [])
        return []

    def describe(self) -> ServerInfo:
        """Describe the server for diagnostics.

        ``concurrent`` is False for servers that handle one request at a time
        (``wsgi.multithread`` false and no gevent); neither long-polling nor
        WebSocket can work there. ``can_websocket`` also needs socket access.
        """
        kind, sock = self.kind, self.sock
        software = str(self._environ.get('SERVER_SOFTWARE') or '').strip()
        gevent = detect_async_mode(sock) == 'gevent'
        concurrent = bool(self._environ.get('wsgi.multithread')) or gevent

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


def telling_close(environ: dict[str, Any], start_response: Any) -> Any:
    """``start_response``, made to add ``Connection: close`` where the server
    closes the connection after the response without saying so.

    That is gevent.pywsgi, for a request that asked for ``Connection: close``
    (RFC 9112, 9.6: the server should say it too). A client that is not told
    may send its next request on the closed connection: Node's keep-alive
    agent does, even after asking for the close (node-fetch asks on every
    request), and that request fails with "socket hang up". pywsgi honours a
    ``Connection: close`` from the application; gunicorn and werkzeug say it
    themselves and are left alone (gunicorn drops the header, werkzeug would
    send it twice).
    """
    asked = environ.get('HTTP_CONNECTION')
    if not asked or 'close' not in (token.strip().lower() for token in asked.split(',')):
        return start_response
    if ServerAdapter(environ).kind != PYWSGI:
        return start_response

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if not status.startswith('101') and not any(
                name.lower() == 'connection' for name, _ in headers):
            headers = [*headers, ('Connection', 'close')]
        if exc_info is None:
            return start_response(status, headers)
        return start_response(status, headers, exc_info)
    return start


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


_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, 'POLLRDHUP', 0)
_DONTWAIT = getattr(socket, 'MSG_DONTWAIT', 0)
_PEEK_NOW = socket.MSG_PEEK | _DONTWAIT


def _raw_socket(sock: Any) -> Any:
    """The socket to peek at without waiting, or None where only ``poll`` is safe.

    A plain socket in blocking or non-blocking mode takes ``MSG_DONTWAIT``
    as it is; one with a timeout would first wait up to that timeout inside
    ``recv``. gevent's socket would park the greenlet on ``EAGAIN``: its
    underlying ``_socket.socket`` (always non-blocking) is peeked at instead.
    Anything else (TLS sockets, whose ``recv`` takes no flags; unknown
    wrappers) goes through ``poll``.
    """
    if not _DONTWAIT:
        return None
    cls = type(sock)
    if cls.__name__ != 'socket':
        return None
    if cls.__module__ == 'socket':
        return sock if sock.gettimeout() in (None, 0.0) else None
    if cls.__module__ == 'gevent._socket3':
        raw = getattr(sock, '_sock', None)
        if raw is None:
            return None
        if type(raw).__name__ == '_closedsocket':
            return raw      # its recv fails with EBADF: gone, as poll says
        return raw if raw.gettimeout() == 0.0 else None
    return None


def peer_gone(sock: Any) -> bool:
    """True when the client closed this connection; never blocks.

    Used on a waiting long-poll whose client may have dropped it. A readable
    socket is peeked at: end of file means gone, data means alive, unless the
    client closed behind that data.

    One ``recv(MSG_PEEK | MSG_DONTWAIT)`` answers the common cases (nothing to
    read: alive; end of file or an error: gone); only when data is waiting
    does ``poll`` tell whether the client hung up behind it.
    """
    raw = _raw_socket(sock)
    if raw is not None:
        try:
            if raw.recv(1, _PEEK_NOW) == b'':
                return True
        except (BlockingIOError, InterruptedError):
            return False    # no data, no end of file, no pending error
        except (OSError, ValueError):
            return True
    return _peer_gone_poll(sock)


def _peer_gone_poll(sock: Any) -> bool:
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
