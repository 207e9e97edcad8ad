"""HTTP long-polling: a GET drains the session's queue, a POST feeds packets in."""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

from .errors import BadRequest, PayloadTooLarge, TooManyRequests, UnknownSid
from .options import Options
from .packets import DecodeError, Packet, decode_payload, encode_payload
from .request import Request
from .response import NO_STORE, TEXT, Headers, compress
from .session import (
    DuplicateRequest,
    ProtocolViolation,
    RateLimited,
    Reason,
    Session,
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
        packets = session.poll(None if adapter.sock is None else adapter.peer_gone)
    except DuplicateRequest:
        session.close(Reason.TRANSPORT_ERROR)
        raise BadRequest('a GET is already waiting on this session') from None
    return payload_body(packets, request, options, headers)


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
        session.begin_post(None if watchdog is None else watchdog.abort)
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
        session.end_post()
    try:
        packets = decode_payload(body)
        error: DecodeError | None = None
    except DecodeError as exc:
        packets, error = exc.packets, exc
    try:
        for packet in packets:
            session.receive(packet)
    except RateLimited as exc:
        session.close(reason_for(exc))
        raise TooManyRequests('message rate limit exceeded') from None
    except ProtocolViolation as exc:
        error = exc  # type: ignore[assignment]
    if error is not None:
        # after the packets before the bad one, and what the app sends for them
        session.close_after_dispatch(reason_for(error))
        raise BadRequest(f'bad payload: {error}')
    headers.append(('Content-Type', 'text/html'))
    return b'ok'


def read_body(request: Request, options: Options, session: Session) -> bytes:
    """The request body, at most ``max_http_buffer_size`` bytes, read in bounded time."""
    limit = options.max_http_buffer_size
    adapter = request.adapter
    declared = request.content_length
    length: int | None
    if declared:
        if not declared.isdigit():
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
