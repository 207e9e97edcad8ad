"""WebSocket connections on top of a WSGI server's client socket.

:func:`accept` turns a WSGI request (its :class:`~engineio_wsgi.request.Request`)
into a :class:`WSConnection`. The WebSocket protocol itself (framing,
masking, close handshake, size limits, permessage-deflate) is the sans-I/O
core of the ``websockets`` package; this module only moves bytes between it
and the socket (the common small data frames take a short cut past its
generators where that leaves it exactly as parsing them would, see
:mod:`engineio_wsgi.rfc6455_fast`):

- no reader thread: the thread that serves the request reads, in
  :meth:`WSConnection.receive`;
- every write is a whole frame written with ``sendall`` by one writer at a
  time; control frames the reader has to answer (pong, close echo) go through
  the same queue and never wait for a slow writer;
- works with plain threads, with gevent when monkey-patched, and with
  gevent's cooperative sockets when nothing is patched.

With gevent-websocket the handler already answered the handshake with a 101;
the same driver then runs on that connection's socket (already open, no
compression) and gevent-websocket's own WebSocket object is left unused.
"""

from __future__ import annotations

import _socket
import base64
import binascii
import collections
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import (
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as HandshakeRequest
from websockets.protocol import CLOSED, OPEN, State
from websockets.server import ServerProtocol

from . import ioloop
from . import rfc6455_fast as fast
from .backends import detect_async_mode, threading_patched
from .fifo import Fifo
from .reasons import PlainStrEnum
from .request import Request
from .wsgi_servers import is_gevent_socket

__all__ = [
    'CONNECTION_LOST',
    'LOCAL_CLOSE',
    'MESSAGE_TOO_BIG',
    'PEER_CLOSE',
    'PROTOCOL_ERROR',
    'ConnectionClosed',
    'End',
    'HandshakeError',
    'WSConnection',
    'accept',
]



class End(PlainStrEnum):
    """Why a connection ended: the values of :attr:`WSConnection.end_reason`."""

    PEER_CLOSE = 'peer closed'
    LOCAL_CLOSE = 'closed locally'
    MESSAGE_TOO_BIG = 'message too big'
    PROTOCOL_ERROR = 'protocol error'
    CONNECTION_LOST = 'connection lost'


PEER_CLOSE = End.PEER_CLOSE
LOCAL_CLOSE = End.LOCAL_CLOSE
MESSAGE_TOO_BIG = End.MESSAGE_TOO_BIG
PROTOCOL_ERROR = End.PROTOCOL_ERROR
CONNECTION_LOST = End.CONNECTION_LOST

# Not larger: above malloc's mmap threshold every recv() costs an mmap (8x slower).
_RECV_SIZE = 64 * 1024
#: reads of one connection in one turn of the loop (the others' turn comes after)
_READS_PER_TURN = 4

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_TEXT_OPCODE, _BINARY_OPCODE = int(TEXT), int(BINARY)

#: Whether new connections take the common frames past the protocol core
#: (see rfc6455_fast); tests turn it off to run both paths.
FAST_FRAMES = True

logger = logging.getLogger(__name__)


class _QuietProtocolLogger(logging.LoggerAdapter):
    """The protocol core's per-connection INFO lines go to DEBUG."""

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


_PROTOCOL_LOGGER = _QuietProtocolLogger(logger, {})
_DEFAULT_CLOSE_TIMEOUT = 3.0


class HandshakeError(Exception):
    """The request cannot become a WebSocket; render ``status`` to the client.

    Raised before anything was written on the connection, so the caller can
    still answer with a normal HTTP response (plus ``headers``).
    """

    def __init__(self, message: str, status: int = 400,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = list(headers or [])


class ConnectionClosed(ConnectionError):
    """A send on a WebSocket that is closing, closed or broken."""


# -- runtime primitives ------------------------------------------------------

class _Runtime:
    """Locks, timers and waits suited to the socket's concurrency model."""

    __slots__ = ('gevent_native', 'gevent_sock', '_gevent', '_semaphore', 'current', 'loop',
                 '_event')

    def __init__(self, sock: Any, backend_hint: str | None) -> None:
        # the socket decides; the hint can only add gevent (see accept())
        mode = 'gevent' if backend_hint == 'gevent' else detect_async_mode(sock)
        # gevent without a patched threading: real thread primitives would
        # block the whole hub, use gevent's own.
        self.gevent_native = mode == 'gevent' and not threading_patched()
        self.gevent_sock = is_gevent_socket(sock)
        #: what writes the rest of a frame and keeps the close timeouts
        self.loop: ioloop.Loop = (ioloop.for_gevent() if self.gevent_sock
                                  else ioloop.for_threads())
        if self.gevent_native:
            import gevent
            import gevent.event
            import gevent.lock
            self._gevent = gevent
            self._semaphore = gevent.lock.Semaphore
            self._event: Any = gevent.event.Event
            self.current: Callable[[], Any] = gevent.getcurrent
        else:
            self._event = threading.Event
            self.current = threading.get_ident

    def write_lock(self) -> Any:
        if self.gevent_native:
            return self._semaphore()
        return threading.Lock()

    def event(self) -> Any:
        return self._event()

    def spawn(self, func: Callable[[], None]) -> None:
        if self.gevent_native:
            self._gevent.spawn(func)
        else:
            threading.Thread(target=func, daemon=True, name='engineio_wsgi-tls-writer').start()


    def wait_readable(self, sock: Any, timeout: float) -> bool:
        pending = getattr(sock, 'pending', None)
        if pending is not None:
            try:
                if pending():
                    return True
            except (OSError, ValueError):
                logger.debug('pending() failed', exc_info=True)
        if self.gevent_sock:
            from gevent.socket import wait_read
            try:
                wait_read(sock.fileno(), timeout=timeout)
            except TimeoutError:
                return False
            return True
        if hasattr(select, 'poll'):
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
            return bool(poller.poll(max(0.0, timeout) * 1000.0))
        readable, _, _ = select.select([sock], [], [], max(0.0, timeout))
        return bool(readable)


def _can_wait_read(sock: Any) -> bool:
    """Whether gevent's socket ``sock`` can wait to be readable on its own
    watcher (``WSConnection._await_readable``).

    gevent's ``recv()`` tries the system call first and waits only when it
    fails with EAGAIN, an exception raised and caught per message when a
    client waits for each answer (about 2 us, several percent of an echo).
    Waiting first is the wait gevent's ``recv()`` does after that failure;
    False when the socket does not have it (another gevent version: plain
    ``recv()``).
    """
    return (getattr(sock, '_wait', None) is not None
            and getattr(sock, '_read_event', None) is not None)


# -- connection ---------------------------------------------------------------

class _Ending:
    """How a connection ends: the close handshake, a cut, the socket's shutdown.

    The part of ``WSConnection`` that the rest of it calls when the
    connection is to end; the fields are set by ``WSConnection.__init__``.
    """

    # each class of the three holds the slots of the fields it declares
    __slots__ = ('_sock', '_proto', '_rt', '_close_timeout', '_state_lock', '_write_lock',
                 '_outbox', '_messages', '_broken', '_finished', '_closing_deadline',
                 '_cancel_timer', '_reader', 'end_reason', '_watch')

    _sock: Any
    _proto: ServerProtocol
    _rt: _Runtime
    _close_timeout: float
    _state_lock: Any
    _write_lock: Any
    _outbox: Fifo[bytes]
    _messages: Fifo[str | bytes]
    _broken: bool
    _finished: bool
    _closing_deadline: float | None
    _cancel_timer: Callable[[], None] | None
    _reader: Any
    end_reason: End | None
    _watch: ioloop.Watch | None

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        raise NotImplementedError

    def _pump_nowait(self) -> bool:
        raise NotImplementedError

    def _fire_drained(self) -> None:
        raise NotImplementedError

    @property
    def close_code(self) -> int | None:
        """The close code received from the peer, else the one we sent."""
        proto = self._proto
        if proto.close_rcvd is not None:
            return int(proto.close_rcvd.code)
        if proto.close_sent is not None:
            return int(proto.close_sent.code)
        return None

    @property
    def open(self) -> bool:
        return self._proto.state is OPEN and not self._broken

    def close(self, code: int = 1000, reason: str = '') -> None:
        """Start (or finish) the close handshake. Idempotent; never waits on
        a peer that does not read.

        The close timeout is armed first, before the close frame is
        written: when it expires the connection is cut, whatever the peer
        does. The frame is written without waiting (the loop writes what
        the socket does not take). From the thread that reads, this then
        reads until the peer answers or the timeout cut the connection;
        from another thread it returns at once, and the reader's
        ``receive`` returns None when the peer answers or at the timeout.
        """
        if self._finished:
            return
        with self._state_lock:
            if self._proto.state is OPEN and not self._broken:
                # A close reason is at most 123 bytes of UTF-8.
                reason = reason.encode('utf-8')[:123].decode('utf-8', 'ignore')
                try:
                    self._proto.send_close(code, reason)
                except (ProtocolError, ValueError):   # a code one may not send
                    self._proto.send_close(1000, reason)
                self._outbox.extend(self._proto.data_to_send())
                self._start_closing(LOCAL_CLOSE)
        self._arm_cut(self._close_timeout)
        self._pump_nowait()
        if self._rt.current() == self._reader:
            while not self._finished:
                try:
                    self.receive(timeout=self._close_timeout)
                except TimeoutError:
                    self._finish(CONNECTION_LOST)
            self._messages.clear()

    def _arm_cut(self, delay: float) -> None:
        """Cut the connection (``abort``) ``delay`` seconds from now, once:
        the close timeout. A later call changes nothing."""
        with self._state_lock:
            arm = self._cancel_timer is None
            if arm:
                self._cancel_timer = _ARMING
        if arm:
            self._cancel_timer = self._rt.loop.call_later(max(0.0, delay), self.abort)
            if self._finished:   # finished meanwhile: nothing left to cut
                self._cancel_timer()

    def _start_closing(self, reason: End) -> None:
        """Record why the connection ends and start the close timeout.

        Call with ``_state_lock`` held.
        """
        if self.end_reason is None:
            self.end_reason = reason
        if self._closing_deadline is None:
            self._closing_deadline = time.monotonic() + self._close_timeout

    def _mark_broken(self) -> None:
        """A write failed: drop the queue and shut the socket down.

        Call without ``_state_lock`` (taken here); the writer calls it with
        ``_write_lock`` held.
        """
        self._broken = True
        if self.end_reason is None:
            self.end_reason = CONNECTION_LOST
        with self._state_lock:
            self._outbox.clear()
        self._shutdown()

    def abort(self) -> None:
        """End the TCP connection now, without a close handshake; never blocks.

        For a close timeout, a writer stuck on a peer that does not read, or
        a server that must let go of a client at once. The reader's
        ``receive`` then returns None.
        """
        if self._finished:
            return
        self._broken = True
        if self.end_reason is None:
            self.end_reason = CONNECTION_LOST
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _finish(self, reason: End) -> None:
        if self._finished:
            return
        self._finished = True
        if self.end_reason is None:
            self.end_reason = reason
        cancel = self._cancel_timer
        if cancel is not None and cancel is not _ARMING:
            cancel()
        self._shutdown()
        # the server owns the socket again once the reader returns: the
        # loop lets go of it now, and a writer waiting for it hears the end
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
        with self._state_lock:
            self._outbox.clear()
        self._fire_drained()


#: ``_cancel_timer`` while a close arms the timeout (one close arms it)
def _ARMING() -> None:
    pass


#: buffers handed to one ``sendmsg`` at most (the system's limit is 1024)
_MAX_BUFFERS = 512


class _Writing(_Ending):
    """How queued frames reach the socket: whole frames, in order, one writer
    at a time, and never a wait on the peer.

    Whoever queues frames writes them at once, with one ``sendmsg`` that
    never waits (all queued buffers in one system call, none joined or
    copied); what the socket does not take stays first in the queue, and
    the loop (ioloop.py) writes it when the socket has room again. While
    that rest waits, only the loop writes. A writer that finds another
    writing leaves its frames to it: the writer looks at the queue again
    after letting go. The part of ``WSConnection`` that writes its
    ``_outbox``; the fields are set by ``WSConnection.__init__``.
    """

    __slots__ = ('_nowait_sock', '_waiting', '_on_drained', '_drain_events')

    _nowait_sock: _socket.socket | None
    #: a rest waits for the socket: only the loop writes (under ``_write_lock``)
    _waiting: bool
    #: called on the loop once the queue is empty (or the connection over)
    _on_drained: Callable[[], None] | None
    #: events of threads that wait for the queue to be written (``flush``)
    _drain_events: list[Any] | None

    def flush(self) -> None:
        """Wait until what is queued was written (or the connection ended).

        For a caller of its own that may wait on the peer (a relay's writer);
        the engine's own writers use :meth:`when_drained` instead.
        """
        if self._pump_nowait():
            self._raise_if_broken()
            return
        event = self._rt.event()
        with self._state_lock:
            done = not self._outbox or self._broken or self._finished
            if not done:
                if self._drain_events is None:
                    self._drain_events = []
                self._drain_events.append(event)
        if not done:
            event.wait()
        self._raise_if_broken()

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop once the queue is empty (at once
        if it is), or the connection failed or ended (a write then raises
        ``ConnectionClosed``). One callback at a time: the holder of the
        writer's turn above."""
        with self._state_lock:
            done = not self._outbox or self._broken or self._finished
            if not done:
                self._on_drained = callback
        if done:
            self._rt.loop.call_soon(callback)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop that writes for this connection."""
        self._rt.loop.call_soon(callback)

    def _fire_drained(self) -> None:
        """The queue is empty, or the connection over: tell who waits."""
        with self._state_lock:
            if self._outbox and not (self._broken or self._finished):
                return
            callback, self._on_drained = self._on_drained, None
            events, self._drain_events = self._drain_events, None
        if callback is not None:
            self._rt.loop.call_soon(callback)
        if events:
            for event in events:
                event.set()

    def _raise_if_broken(self) -> None:
        if self._broken:
            raise ConnectionClosed('WebSocket connection is broken')

    def _written(self, block: bool) -> bool:
        if block:
            self.flush()
            return True
        done = self._pump_nowait()
        self._raise_if_broken()
        return done

    def _pump_nowait(self) -> bool:
        """Write queued frames without waiting on the peer; True when the
        queue is empty afterwards.

        False when another writer holds the turn (it writes our frames), or
        the socket took only part of them: the rest stays first in the
        queue, nothing overtakes it and no frame is cut into, and the loop
        writes it once the socket has room (``_on_writable``).
        """
        outbox = self._outbox
        if not outbox:   # whoever emptied it told who waits
            return True
        while True:
            if not self._write_lock.acquire(blocking=False):
                return False
            try:
                if self._waiting:
                    return False
                if not self._write_out():
                    return False
            finally:
                self._write_lock.release()
            # frames queued by whoever found the turn taken: ours to write
            if not outbox:
                self._fire_drained()
                return True

    def _write_out(self) -> bool:
        """Under ``_write_lock``: write until the queue is empty (True) or
        the socket is full (False, and the loop watches it)."""
        outbox = self._outbox
        raw = self._nowait_sock
        while True:
            with self._state_lock:
                if not outbox:
                    return True
                if self._broken or self._finished:
                    # after _finish the server owns the socket again (and
                    # closes it): never touch it
                    outbox.clear()
                    return True
                buffers = outbox[:_MAX_BUFFERS]
            if not buffers[0]:   # the protocol's end-of-stream marker
                with self._state_lock:
                    del outbox[:1]
                try:
                    self._sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            if b'' in buffers:
                buffers = buffers[:buffers.index(b'')]
            if raw is None:
                # no send that never waits (TLS): a task of its own writes
                self._waiting = True
                self._rt.spawn(self._write_blocking)
                return False
            try:
                sent = raw.sendmsg(buffers, (), _DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._mark_broken()
                continue
            with self._state_lock:
                _drop_sent(outbox, sent)
            if sent < sum(map(len, buffers)):
                self._waiting = True
                self._watch = self._rt.loop.when_writable(self._sock, self._on_writable)
                return False

    def _on_writable(self) -> None:
        """On the loop: the socket has room (or failed) for the rest; the
        frames queued meanwhile go with it."""
        with self._write_lock:
            self._watch = None
            self._waiting = False
        self._pump_nowait()

    def _write_blocking(self) -> None:
        """For a socket with no send that never waits: write the queue,
        waiting on the peer, on a task of its own; the connection's close
        timeout still cuts it."""
        outbox = self._outbox
        with self._write_lock:
            try:
                while True:
                    with self._state_lock:
                        if not outbox or self._broken or self._finished:
                            outbox.clear()
                            break
                        chunk = outbox.popleft()
                    try:
                        if chunk:
                            self._sock.sendall(chunk)
                        else:
                            self._sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        self._mark_broken()
            finally:
                self._waiting = False
        self._pump_nowait()   # what was queued after the last look, and the drain


def _drop_sent(outbox: Fifo[Any], sent: int) -> None:
    """Take ``sent`` bytes off the front of ``outbox``; a buffer written in
    part stays first as a view of its rest, not a copy."""
    taken = 0
    for buffer in outbox:
        size = len(buffer)
        if sent < size or not size:   # not past the end-of-stream marker
            break
        sent -= size
        taken += 1
    del outbox[:taken]
    if sent and outbox:
        outbox[0] = memoryview(outbox[0])[sent:]


class WSConnection(_Writing):
    """One WebSocket connection driven on the server's socket.

    ``receive`` is for the thread (or greenlet) serving the request only;
    ``send`` and ``close`` may be called from anywhere.
    """

    # one per WebSocket, thousands held at once: fixed fields, no per-instance dict
    # (the fields of _Ending and _Writing are in their own slots)
    __slots__ = ('extensions', '_frag_opcode', '_frag_parts', '_failed', '_read_ahead',
                 '_fast_frames', '_wait_read', '_drained', '_on_message', '_on_end',
                 '_read_watch', '_may_detach')

    def __init__(self, sock: Any, protocol: ServerProtocol, runtime: _Runtime, *,
                 close_timeout: float = _DEFAULT_CLOSE_TIMEOUT,
                 extensions: list[str] | None = None, read_ahead: bytes = b'',
                 fast_frames: bool | None = None, may_detach: bool = True) -> None:
        self._sock = sock
        #: the server lets go of the socket when the request returns (see detach)
        self._may_detach = may_detach
        self._proto = protocol
        self._rt = runtime
        self._close_timeout = close_timeout
        #: Names of the negotiated extensions, e.g. ``['permessage-deflate']``.
        self.extensions = list(extensions or [])
        #: Why the connection ended (one of the module constants) or None.
        self.end_reason: End | None = None
        # Protocol state and the outgoing queue are guarded by _state_lock,
        # which is never held across I/O. _write_lock is held by the one
        # thread writing queued frames to the socket.
        self._state_lock = threading.Lock() if not runtime.gevent_native else runtime.write_lock()
        self._write_lock = runtime.write_lock()
        # lists, not deques: empty (as when idle) they hold no buffer (fifo.py);
        # the writer joins the outbox whole, and the messages taken one at a
        # time are at most what one recv() brought
        self._outbox: Fifo[bytes] = Fifo()
        self._messages: Fifo[str | bytes] = Fifo()
        self._frag_opcode: Any = None
        # a list only while a fragmented message is being received
        self._frag_parts: Any = ()
        self._broken = False        # a write failed or the socket was aborted
        self._finished = False      # reading is over, socket shut down
        self._closing_deadline: float | None = None
        self._cancel_timer: Callable[[], None] | None = None
        self._reader: Any = runtime.current()
        self._failed = False        # we failed the connection: drop what follows
        #: bytes the server read ahead behind the handshake, taken before the socket
        self._read_ahead = read_ahead
        # the common frames skip the protocol's generators (rfc6455_fast)
        self._fast_frames = ((FAST_FRAMES if fast_frames is None else fast_frames)
                             and fast.supported(protocol))
        # gevent: once a recv() emptied the socket, wait for it to be readable
        # before the next one (see _can_wait_read; a flag, not a closure: no
        # object of its own per connection)
        self._wait_read = runtime.gevent_sock and _can_wait_read(sock)
        self._drained = False
        # one send that never waits, for a frame written from the sender's thread
        self._nowait_sock = _nowait_socket(sock, runtime.gevent_sock)
        self._waiting = False
        self._on_drained: Callable[[], None] | None = None
        self._drain_events: list[Any] | None = None
        self._watch: ioloop.Watch | None = None
        # once the loop reads (detach): what it hands the messages and the end to
        self._on_message: Callable[[str | bytes], None] | None = None
        self._on_end: Callable[[], None] | None = None
        self._read_watch: ioloop.Watch | None = None

    # -- public API ---------------------------------------------------------

    def detach(self, on_message: Callable[[str | bytes], None],
               on_end: Callable[[], None]) -> bool:
        """Hand the connection to the loop, so that the request can return.

        From now on the loop reads: each message goes to ``on_message`` and
        the end (either side's close, a cut, a failure) to ``on_end``, once,
        on the loop (its thread, or a greenlet of the hub's);
        ``receive`` is not called again. The server's socket object is
        left with a socket whose peer is gone: the server's write of its
        response fails as for a client that left, and its close closes
        only that. Messages already read (behind the upgrade, say) are
        handed over first.

        On threads the connection keeps a duplicate of the descriptor, and
        the server's descriptor number is made to name the dead socket. On
        gevent the connection keeps the descriptor itself (the hub's loop
        knows descriptors by number: a duplicate, or a number that names
        another socket behind its back, would confuse it), and gevent's
        socket object is given the dead socket in its place.

        False where the connection stays with the request (the caller then
        reads with ``receive``): gevent-websocket (its handler owns the
        socket), TLS, no ``MSG_DONTWAIT``, a connection over already, or no
        descriptor to spare.
        """
        if not self._may_detach or not _DONTWAIT or self._finished:
            return False
        with self._write_lock:   # no write is under way while the socket changes
            try:
                own = self._take_socket()
            except OSError:
                logger.warning('a WebSocket stays on its request: %s', 'no descriptor to spare',
                               exc_info=logger.isEnabledFor(logging.DEBUG))
                return False
            if own is None:
                return False
            self._sock = own
            self._nowait_sock = own
        self._reader = None
        self._on_message, self._on_end = on_message, on_end
        if self._broken:   # cut while it moved: the cut reaches the descriptor kept
            self._shutdown()
        # a writer that found the turn taken here left its frames to us
        self._pump_nowait()
        # held before the loop can call back (an end found at once cancels it)
        loop = self._rt.loop
        self._read_watch = watch = loop.while_readable(own, self._on_readable)
        loop.call_soon(self._on_readable)   # what was read already, first
        loop.arm(watch)
        return True

    def _take_socket(self) -> Any:
        """Under ``_write_lock``: the non-blocking socket the connection keeps
        once the loop owns it, the server's object left with a dead one; None
        where this socket cannot move (the checks come before any change)."""
        sock, rt = self._sock, self._rt
        if hasattr(sock, 'getpeercert'):   # TLS: its state is in the object
            return None
        if rt.gevent_sock:
            raw = getattr(sock, '_sock', None)
            if not isinstance(rt.loop, ioloop.HubLoop) or not isinstance(raw, _socket.socket):
                return None
            dead, peer = _socket.socketpair()
            peer.close()
            # of gevent's own class (it may take weak references to it)
            dead = type(raw)(dead.family, dead.type, dead.proto, dead.detach())
            dead.setblocking(False)
            sock._sock = dead
            raw.setblocking(False)
            return raw
        if not isinstance(rt.loop, ioloop.SelectorLoop) or not isinstance(sock, _socket.socket):
            return None
        own = socket.socket(fileno=os.dup(sock.fileno()))
        try:
            own.setblocking(False)
            _blind(sock)
        except OSError:
            own.close()
            raise
        return own

    def _take_in(self, data: bytes) -> bool:
        """Run bytes read (b'': the end of the stream) through the protocol and
        write what it answers (pong, close echo) without waiting: the reader
        must not wait on a client that does not read. True once the
        connection is over."""
        with self._state_lock:
            self._feed(data)
            ended = self._proto.state is CLOSED or not data
        self._pump_nowait()
        return ended

    def _close_own(self) -> None:
        with self._write_lock:   # no write is under way on it
            self._sock.close()

    def _on_readable(self) -> None:
        """On the loop: read what the socket has, without waiting; hand on the
        messages, then the end."""
        if self._finished:
            return
        ended = False
        for _ in range(_READS_PER_TURN):
            if self._read_ahead:
                data, self._read_ahead = self._read_ahead, b''
            else:
                try:
                    data = self._sock.recv(_RECV_SIZE)
                except BlockingIOError:
                    break
                except OSError:
                    data = b''
            ended = self._take_in(data)
            if ended or self._broken or len(data) < _RECV_SIZE:
                break
        closing = self._closing_deadline
        if closing is not None and self._cancel_timer is None and not ended:
            # the client began the close (or failed the protocol): no reader
            # waits for its end here, the close timeout cuts it
            self._arm_cut(closing - time.monotonic())
        deliver = self._on_message
        if deliver is not None:
            while self._messages:
                deliver(self._next_message())
        if ended or self._broken:
            self._finish(CONNECTION_LOST)
            watch, self._read_watch = self._read_watch, None
            if watch is not None:
                watch.cancel()
            # after the loop let go of the descriptor (the cancel comes first)
            self._rt.loop.call_soon(self._close_own)
            on_end, self._on_end = self._on_end, None
            self._on_message = None
            if on_end is not None:
                on_end()

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """Next message: ``str`` for text, ``bytes`` for binary.

        Returns None once the connection is over (closed by either side,
        failed, or lost); the socket is then shut down. Raises
        ``TimeoutError`` when ``timeout`` seconds pass without a message.
        """
        self._reader = self._rt.current()
        if self._messages:
            return self._next_message()
        if self._finished:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None
            if self._closing_deadline is not None:
                wait = self._closing_deadline - time.monotonic()
            if deadline is not None:
                left = deadline - time.monotonic()
                wait = left if wait is None else min(wait, left)
            if self._read_ahead:
                data, self._read_ahead = self._read_ahead, b''
            else:
                if wait is not None and not self._rt.wait_readable(self._sock, wait):
                    closing = self._closing_deadline
                    if closing is not None and time.monotonic() >= closing:
                        self._finish(CONNECTION_LOST)
                        return None
                    raise TimeoutError('no WebSocket message within the timeout')
                try:
                    if wait is None and self._drained and self._wait_read:
                        event = self._sock._read_event
                        if event is not None:   # None once closed: recv() then reports it
                            self._sock._wait(event)
                    data = self._sock.recv(_RECV_SIZE)
                except TimeoutError:
                    continue
                except OSError:
                    data = b''
                # less than asked for: the socket had no more
                self._drained = len(data) < _RECV_SIZE
            ended = self._take_in(data)
            if self._messages:
                return self._next_message()
            if ended or self._broken:
                self._finish(CONNECTION_LOST)
                return None

    def _next_message(self) -> str | bytes:
        """The oldest message received. Many at once (one read of small
        frames brings thousands) are taken from a deque, whose ``popleft``
        does not move the rest; the queue is a bufferless ``Fifo`` again once
        drained. Only the reader calls this and appends, so no lock."""
        messages = self._messages
        if type(messages) is Fifo and len(messages) > 1:
            self._messages = messages = collections.deque(messages)  # type: ignore[assignment]
        message = messages.popleft()
        if not messages and type(messages) is not Fifo:
            self._messages = Fifo()
        return message

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send one message (text for ``str``). Thread-safe.

        Raises :class:`ConnectionClosed` when the connection is closing,
        closed or broken.
        """
        self.send_many((data,))

    def send_many(self, messages: Iterable[str | bytes | bytearray | memoryview],
                  block: bool = True) -> bool:
        """Send several messages, in order, written together where possible.

        ``block=False`` never waits on the peer: True when every frame was
        written, False when some wait in the queue for :meth:`flush` (or for
        the writer under way).
        """
        with self._state_lock:
            if self._broken:
                raise ConnectionClosed('WebSocket connection is broken')
            proto = self._proto
            if self._fast_frames and fast.can_encode(proto):
                # no state of the protocol changes for a whole data frame
                self._outbox.extend(map(data_frame, messages))
            else:
                try:
                    for data in messages:
                        if isinstance(data, str):
                            proto.send_text(data.encode('utf-8'))
                        else:
                            proto.send_binary(data)
                except InvalidState as exc:
                    raise ConnectionClosed('WebSocket connection is closed') from exc
                self._outbox.extend(proto.data_to_send())
        return self._written(block)

    def frame_encoder(self) -> Callable[[str | bytes], bytes] | None:
        """What builds this connection's data frames (for :meth:`send_frames`),
        or None where a frame depends on the connection: compression, or the
        protocol's debug log of each frame. Fixed for the connection's life."""
        proto = self._proto
        if self._fast_frames and not proto.extensions and not proto.debug:
            return data_frame
        return None

    def send_frames(self, frames: Iterable[bytes], block: bool = True) -> bool:
        """Send whole data frames built by :meth:`frame_encoder`, in order
        (the same bytes may go to many connections); ``block`` as ``send_many``."""
        with self._state_lock:
            if self._broken:
                raise ConnectionClosed('WebSocket connection is broken')
            if self._proto.state is not OPEN:
                raise ConnectionClosed('WebSocket connection is closed')
            self._outbox.extend(frames)
        return self._written(block)

    # -- internals ----------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Run received bytes through the protocol. Call with ``_state_lock`` held."""
        proto = self._proto
        if proto.state is CLOSED:
            return
        was_open = proto.state is OPEN
        if data:
            if self._fast_frames and not self._failed and fast.at_frame_start(proto):
                taken = fast.take_messages(data, fast.size_limit(proto), self._messages.append)
                if taken == len(data):
                    return   # the protocol saw nothing, said nothing, changed nothing
                if taken:
                    data = data[taken:]
            proto.receive_data(data)
        else:
            proto.receive_eof()
        for frame in proto.events_received():
            if not isinstance(frame, Frame):
                continue
            op = frame.opcode
            if op is TEXT or op is BINARY:
                if frame.fin:
                    self._deliver(op, frame.data)
                else:
                    self._frag_opcode = op
                    self._frag_parts = [bytes(frame.data)]
            elif op is CONT:
                self._frag_parts.append(bytes(frame.data))
                if frame.fin:
                    self._deliver(self._frag_opcode, b''.join(self._frag_parts))
                    self._frag_parts = ()
                    self._frag_opcode = None
        if proto.state is not OPEN and was_open:
            exc = proto.parser_exc
            if isinstance(exc, PayloadTooBig):
                reason = MESSAGE_TOO_BIG
            elif isinstance(exc, (ProtocolError, UnicodeDecodeError)):
                reason = PROTOCOL_ERROR
            elif exc is not None:
                reason = CONNECTION_LOST
            else:
                reason = PEER_CLOSE
            self._start_closing(reason)
        self._outbox.extend(proto.data_to_send())

    def _deliver(self, opcode: Any, data: Any) -> None:
        """Queue one complete message for ``receive``. Call with ``_state_lock`` held
        (from :meth:`_feed`)."""
        if self._failed:
            return
        if opcode is TEXT:
            try:
                self._messages.append(bytes(data).decode('utf-8'))
            except UnicodeDecodeError:
                self._failed = True
                self._proto.fail(1007, 'invalid UTF-8 in text message')
                self._start_closing(PROTOCOL_ERROR)
        else:
            self._messages.append(bytes(data))


def _blind(sock: _socket.socket) -> None:
    """Put a socket whose peer is gone under ``sock``'s descriptor number:
    writes fail with ``EPIPE``, reads see the end, closing closes only it."""
    dead, peer = socket.socketpair()
    try:
        peer.close()
        os.dup2(dead.fileno(), sock.fileno(), inheritable=False)
    finally:
        dead.close()


def data_frame(message: str | bytes | bytearray | memoryview) -> bytes:
    """One whole unmasked data frame (text for ``str``), as the server sends it
    without extensions."""
    if isinstance(message, str):
        return fast.encode_frame(_TEXT_OPCODE, message.encode('utf-8'))
    return fast.encode_frame(_BINARY_OPCODE, message)


#: ``send`` flags for a try that never waits (0: the platform has none)
_DONTWAIT = getattr(socket, 'MSG_DONTWAIT', 0)


def _nowait_socket(sock: Any, gevent_sock: bool) -> _socket.socket | None:
    """The system socket on which ``send(data, _DONTWAIT)`` never waits
    (raises ``BlockingIOError`` when it has no room), or None where there is
    none: no ``MSG_DONTWAIT`` (Windows), a TLS socket, or a socket with a
    timeout (Python would wait)."""
    if not _DONTWAIT or hasattr(sock, 'getpeercert'):
        return None
    if gevent_sock:
        # gevent's send() waits on EAGAIN; the system socket under it is
        # non-blocking and never does
        raw = getattr(sock, '_sock', None)
        return raw if isinstance(raw, _socket.socket) else None
    if not isinstance(sock, _socket.socket) or sock.gettimeout() is not None:
        return None
    return sock


# -- the protocol core ---------------------------------------------------------

class _ServerProtocol(ServerProtocol):
    """The ``websockets`` server protocol, but for a close frame that comes
    between the fragments of a message.

    RFC 6455 lets control frames come between fragments (5.4), a close frame
    too: it ends the connection and the unfinished message is dropped (1.4:
    after a close, further data is discarded). The protocol core instead
    fails the connection with 1002 ("incomplete fragmented message"), a
    protocol error the peer did not make; here the close is answered as any
    other, echoing the peer's code (the Autobahn TestSuite's case 7.1.5).
    """

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            # the size of the message under way ('cur_size' in older websockets)
            for name in ('current_size', 'cur_size'):
                if getattr(self, name, None) is not None:
                    setattr(self, name, None)
        super().recv_frame(frame)


# -- accept -------------------------------------------------------------------

def _check_handshake(request: Request) -> None:
    if request.method != 'GET':
        raise HandshakeError('WebSocket handshake must use GET')
    if request.http_version == 'HTTP/1.0':
        raise HandshakeError('WebSocket handshake needs HTTP/1.1')
    if not request.upgrade_ok:
        raise HandshakeError('missing "Upgrade: websocket" header')
    if not request.connection_ok:
        raise HandshakeError('missing "Connection: Upgrade" header')
    if request.websocket_version != '13':
        raise HandshakeError('unsupported Sec-WebSocket-Version (13 required)',
                             headers=[('Sec-WebSocket-Version', '13')])
    try:
        raw_key = base64.b64decode(request.websocket_key.encode('ascii'), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw_key = b''
    if len(raw_key) != 16:
        raise HandshakeError('invalid Sec-WebSocket-Key header')


def _handshake_request(request: Request) -> HandshakeRequest:
    headers = Headers()
    for name, value in request.headers():
        headers[name] = value
    path = request.path
    query = request.query_string
    if query:
        path = f'{path}?{query}'
    try:
        path.encode('ascii')
    except UnicodeEncodeError:
        path = '/'
    return HandshakeRequest(path, headers)


def accept(request: Request, *, max_message_size: int | None = 1_000_000,
           compression: bool = False, backend_hint: str | None = None,
           close_timeout: float = _DEFAULT_CLOSE_TIMEOUT) -> WSConnection:
    """Complete the WebSocket handshake for this request.

    ``max_message_size`` bounds one incoming message in bytes (after
    decompression); a larger one closes the connection with 1009 before it is
    buffered. ``compression`` allows permessage-deflate when the client offers
    it. ``backend_hint`` (``'threading'``, ``'gevent'`` or None) is advisory:
    locks, timers and waits follow the socket (gevent's or not) and whether
    ``threading`` is monkey-patched; ``'gevent'`` only matters for a
    non-gevent socket in an unpatched process, which should not happen.
    ``close_timeout`` bounds how long a close waits for the peer.

    Raises :class:`HandshakeError` (nothing written yet) when the request is
    not a valid upgrade or the server gives no socket access. Afterwards the
    application must end the WSGI call with
    ``request.adapter.finish_takeover(start_response)``.

    Where the server answered the upgrade already (gevent-websocket,
    ``request.adapter.upgraded``), no HTTP refusal is possible any more: this
    returns the open connection, to close at once if it is refused.
    """
    adapter = request.adapter
    sock = adapter.sock
    if adapter.upgraded:
        if sock is None:
            raise HandshakeError('cannot reach the socket behind gevent-websocket')
        # Its WebSocket object must not write a close frame of its own later.
        adapter.mark_websocket_done()
        runtime = _Runtime(sock, backend_hint)
        proto = _ServerProtocol(state=State.OPEN, max_size=max_message_size,
                                logger=_PROTOCOL_LOGGER)
        read_ahead = adapter.take_read_ahead()
        sock.settimeout(None)
        return WSConnection(sock, proto, runtime, close_timeout=close_timeout,
                            read_ahead=read_ahead, may_detach=False)

    _check_handshake(request)
    if sock is None:
        info = adapter.describe()
        raise HandshakeError(info.why_not or 'WebSocket is not available on this server')

    # One protocol object answers the handshake (validation, accept key,
    # extension negotiation); a second one, created open, runs the frames
    # with the negotiated extensions.
    offered = enable_server_permessage_deflate(None) if compression else None
    handshake = ServerProtocol(extensions=offered, max_size=max_message_size,
                               logger=_PROTOCOL_LOGGER)
    response = handshake.accept(_handshake_request(request))
    if response.status_code != 101:
        raise HandshakeError(str(handshake.handshake_exc or 'invalid WebSocket handshake'))
    handshake.send_response(response)
    runtime = _Runtime(sock, backend_hint)
    read_ahead = adapter.take_read_ahead()
    try:
        sock.settimeout(None)
        for chunk in handshake.data_to_send():
            if chunk:
                sock.sendall(chunk)
    except OSError as exc:
        raise ConnectionClosed('connection lost during the WebSocket handshake') from exc
    proto = _ServerProtocol(state=State.OPEN, max_size=max_message_size,
                            logger=_PROTOCOL_LOGGER)
    proto.extensions = list(handshake.extensions)
    names = [str(ext.name) for ext in proto.extensions]
    return WSConnection(sock, proto, runtime, close_timeout=close_timeout, extensions=names,
                        read_ahead=read_ahead)
