"""HTTP long-polling: a GET drains the session's queue, a POST feeds packets in.

``PollingTransport`` is the session's transport while it is on polling: the
one waiting GET (with its generation, and the takeover of a GET whose client
left), the one POST in progress and its body watchdog, and the pause while a
WebSocket upgrade is probed. Its fields are guarded by the session's lock.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from . import locks, trace
from .errors import BadRequest, PayloadTooLarge, TooManyRequests, UnknownSid
from .lifecycle import OPEN_STATES, State
from .options import Options
from .packets import DecodeError, Packet, PacketType, decode_payload, encode_payload
from .reasons import LINGERING_REASONS, Reason
from .request import Request
from .response import NO_STORE, TEXT, Headers, compress
from .session import Session
from .transport import (
    DuplicateRequest,
    ProtocolViolation,
    RateLimited,
    SessionEnded,
    reason_for,
)

logger = logging.getLogger(__name__)

_CHUNK = 65536


def get(session: Session, request: Request, options: Options,
        headers: Headers) -> bytes:
    """Answer a long-poll: the queued packets as one payload."""
    adapter = request.adapter
    try:
        packets = _transport(session).poll(None if adapter.sock is None else adapter.peer_gone)
    except DuplicateRequest:
        session.close(Reason.TRANSPORT_ERROR)
        raise BadRequest('a GET is already waiting on this session') from None
    if options.trace and packets and packets[0] is NOOP:
        # the only packet a GET sends that was never queued
        trace.sending(session.sid, 'polling', NOOP)
    return payload_body(packets, request, options, headers)


def _transport(session: Session) -> PollingTransport:
    # the server routes polling requests to sessions that started on polling only
    polling = session.polling
    assert isinstance(polling, PollingTransport)
    return polling


def payload_body(packets: list[Packet], request: Request, options: Options,
                 headers: Headers) -> bytes:
    body = encode_payload(packets)
    headers.append(TEXT)
    headers.append(NO_STORE)
    if options.http_compression:
        body = compress(body, request.accept_encoding, options.compression_threshold, headers)
    return body


def post(session: Session, request: Request, options: Options,
         headers: Headers) -> bytes:
    """Take a payload from the client; answers ``ok``."""
    if request.content_type == 'application/octet-stream':
        session.close(Reason.PARSE_ERROR)
        raise BadRequest('binary POST bodies are not part of Engine.IO v4')
    watchdog = None if session.backend.bounds_blocking_calls else _watchdog(request, session)
    try:
        _transport(session).begin_post(None if watchdog is None else watchdog.abort)
    except SessionEnded:
        raise UnknownSid('session has ended') from None
    except DuplicateRequest:
        session.close(Reason.TRANSPORT_ERROR)
        raise BadRequest('a POST is already in progress on this session') from None
    try:
        body = read_body(request, options, session)
    finally:
        if watchdog is not None:
            watchdog.disarm()
        _transport(session).end_post()
    try:
        packets = decode_payload(body)
        error: DecodeError | None = None
    except DecodeError as exc:
        packets, error = exc.packets, exc
    receive_payload(session, packets, error)
    headers.append(('Content-Type', 'text/html'))
    return b'ok'


def receive_payload(session: Session, packets: list[Packet],
                    error: Exception | None) -> None:
    """Apply a POST's packets (decoded here or by another process of a
    cluster); ``error``: the payload had an undecodable packet after them."""
    try:
        for packet in packets:
            session.receive(packet)
    except RateLimited as exc:
        session.close(reason_for(exc))
        raise TooManyRequests('message rate limit exceeded') from None
    except ProtocolViolation as exc:
        error = exc
    if error is not None:
        # after the packets before the bad one, and what the app sends for them
        session.close_after_dispatch(reason_for(error))
        raise BadRequest(f'bad payload: {error}')


def read_body(request: Request, options: Options, session: Session) -> bytes:
    """The request body, at most ``max_http_buffer_size`` bytes, read in bounded time."""
    limit = options.max_http_buffer_size
    adapter = request.adapter
    declared = request.content_length
    length: int | None
    if declared:
        # ASCII digits only: str.isdigit() is also true for '²' or '٣'
        if not (declared.isascii() and declared.isdigit()):
            session.close(Reason.PARSE_ERROR)
            raise BadRequest('Content-Length is not a number')
        length = int(declared)
        if length > limit:
            session.close(Reason.PAYLOAD_TOO_LARGE)
            raise PayloadTooLarge(f'body of {length} bytes')
    elif request.chunked or adapter.input_terminated:
        length = None
    else:
        length = 0
    stream = adapter.body
    try:
        with session.backend.timeout(options.http_body_timeout):
            body = _read(stream, length, limit)
    except (OSError, TimeoutError, ValueError) as exc:
        session.close(Reason.TRANSPORT_ERROR)
        raise BadRequest(f'request body did not arrive: {exc!r}') from None
    if body is None:
        session.close(Reason.PAYLOAD_TOO_LARGE)
        raise PayloadTooLarge('chunked body over the limit')
    if length is not None and len(body) < length:
        session.close(Reason.TRANSPORT_ERROR)
        raise BadRequest('body shorter than its Content-Length')
    adapter.body_read = True
    return body


def _read(stream: Any, length: int | None, limit: int) -> bytes | None:
    if length is not None:
        parts = []
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(remaining, _CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            remaining -= len(chunk)
        return b''.join(parts) if len(parts) != 1 else parts[0]
    parts = []
    size = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return b''.join(parts)
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)


class _Watchdog:
    """Cuts the read side of a POST's connection when its body is too slow.

    Armed while the body is read, and only then: ``disarm`` returns once a
    running ``abort`` is over, and after it ``abort`` does nothing. So the
    cut can never reach the connection once the request read its body (and
    may have been answered), e.g. a kept-alive connection already serving
    the client's next request.
    """

    def __init__(self, sock: socket.socket, session: Session) -> None:
        self._sock = sock
        self._lock = session.backend.lock()
        self._armed = True

    def abort(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RD)  # the 400 can still be written

    def disarm(self) -> None:
        with self._lock:
            self._armed = False


def _watchdog(request: Request, session: Session) -> _Watchdog | None:
    """Where the server gives access to the socket, a watchdog for this POST.

    Elsewhere (no socket, threads) nothing can interrupt a read that blocks:
    ``http_body_timeout`` then depends on the server's own timeouts.
    """
    sock = request.adapter.sock
    return None if sock is None else _Watchdog(sock, session)


NOOP = Packet(PacketType.NOOP)


class PollingTransport:
    """How a session's packets move over long-polling requests."""

    name = 'polling'
    # kept by an upgraded session too: fixed fields, no per-instance dict
    __slots__ = ('_session', '_lock', '_wake', '_get_waiting', '_generation', '_peer_gone',
                 '_post_active', 'paused', 'probe_taken')

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = session.lock
        self._wake = session.backend.event()   # a waiting GET
        self._get_waiting = False
        self._generation = 0
        self._peer_gone: Callable[[], bool] | None = None
        self._post_active = False
        #: a WebSocket probe succeeded: GETs answer noop until the switch or its failure
        self.paused = False
        #: reserved by the first WebSocket that asks to upgrade this session
        self.probe_taken = False
        session.polling = self

    @property
    def get_waiting(self) -> bool:
        return self._get_waiting

    @property
    def post_active(self) -> bool:
        return self._post_active

    # -- the transport interface (see transport.py) -------------------------------

    def queued(self) -> bool:
        """Under the session's lock (as every method so marked in transport.py)."""
        assert not locks.CHECK or locks.held(self._lock)
        return True

    def send(self) -> None:
        self._wake.set()

    def carries_close(self, reason: Reason) -> bool:
        assert not locks.CHECK or locks.held(self._lock)
        return self._get_waiting or reason in LINGERING_REASONS

    def writing(self) -> bool:
        assert not locks.CHECK or locks.held(self._lock)
        return False

    def attached(self, opening: Packet | None) -> None:
        pass

    def wake(self) -> None:
        self._wake.set()

    close = abort = wake

    # -- GET ------------------------------------------------------------------------

    def poll(self, peer_gone: Callable[[], bool] | None = None) -> list[Packet]:
        """Wait for packets for a long-polling GET.

        ``peer_gone`` tells whether this GET's client has dropped the
        connection. A second GET while one waits raises ``DuplicateRequest``,
        unless the waiting one was abandoned: then the new one takes over.
        While the session drains (a parse error: its close follows the
        messages received before it), the GET waits for the close, so that
        it brings the replies and the close packet together: no later GET
        is served.
        """
        session = self._session
        generation = self._claim(peer_gone)
        limit = session.options.max_packets_per_poll
        # a GET never outlives the heartbeat's verdict on its session
        deadline = (session.backend.monotonic() + session.options.ping_interval
                    + session.options.ping_timeout)
        finish = False
        checked = peer_gone is None
        try:
            while True:
                with self._lock:
                    if generation != self._generation:
                        return [NOOP]   # taken over by a newer GET
                    if self.paused or session.channel is not self:
                        return [NOOP]
                    # a draining session's replies wait for its close packet
                    ready = bool(session.outbox) and session.state is not State.DRAINING
                    if ready and checked:
                        packets, finish = session.take(limit)
                        return packets
                    if not ready:
                        if session.state not in OPEN_STATES:
                            return [NOOP]
                        self._wake.clear()
                if ready:
                    # packets handed to a dropped connection would be lost
                    if peer_gone():  # type: ignore[misc]
                        return [NOOP]
                    checked = True
                    continue
                checked = peer_gone is None
                remaining = deadline - session.backend.monotonic()
                if remaining <= 0:
                    return [NOOP]
                self._wake.wait(remaining)
        finally:
            with self._lock:
                if generation == self._generation:
                    self._get_waiting = False
                    self._peer_gone = None
            if finish:
                session.delivered()

    def _claim(self, peer_gone: Callable[[], bool] | None) -> int:
        """Become the session's one waiting GET; returns this GET's generation."""
        while True:
            with self._lock:
                if not self._get_waiting:
                    self._get_waiting = True
                    self._generation += 1
                    self._peer_gone = peer_gone
                    return self._generation
                waiting_gone = self._peer_gone
            if waiting_gone is None or not waiting_gone():
                raise DuplicateRequest()
            with self._lock:
                if self._peer_gone is waiting_gone:
                    self._get_waiting = False   # the abandoned GET leaves empty-handed
                    self._generation += 1
            self._wake.set()

    # -- POST -----------------------------------------------------------------------

    def begin_post(self, abort: Callable[[], None] | None = None) -> None:
        """A POST starts; ``abort`` cuts its connection if the body is too slow.

        ``abort`` may be called (from the heartbeat) until ``end_post``; it
        must itself do nothing once the request's body reading is over.

        Raises ``SessionEnded`` when the session no longer takes client input.
        """
        session = self._session
        with self._lock:
            if session.state is not State.OPEN:
                raise SessionEnded()
            duplicate = self._post_active
            wake = False
            if not duplicate:
                self._post_active = True
                if abort is not None:
                    wake = session.heartbeat.watch_body(
                        abort, session.backend.monotonic() + session.options.http_body_timeout)
        if duplicate:
            raise DuplicateRequest()
        if wake:
            session.heartbeat.wake()

    def end_post(self) -> None:
        session = self._session
        with self._lock:
            self._post_active = False
            wake = session.heartbeat.unwatch_body()
        if wake:
            session.heartbeat.wake()   # a heartbeat kept only for this POST can end

    # -- upgrade ----------------------------------------------------------------------

    def reserve_probe(self) -> bool:
        """Claim this session for one upgrading WebSocket; False if one has it."""
        session = self._session
        with self._lock:
            if (self.probe_taken or session.state not in OPEN_STATES
                    or session.channel is not self):
                return False
            self.probe_taken = True
            return True

    def pause(self) -> None:
        """``2probe`` arrived: pending and new GETs answer ``noop`` at once."""
        with self._lock:
            self.paused = True
        self._wake.set()

    def resume(self) -> None:
        """The probe failed or timed out: carry on over polling."""
        with self._lock:
            self.paused = False
            self.probe_taken = False
        self._wake.set()
