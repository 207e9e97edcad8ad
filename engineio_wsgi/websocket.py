"""The WebSocket transport: WebSocket-only sessions and the upgrade from polling.

The request's own thread (or greenlet) reads the socket for the whole life of
the WebSocket; writes come from whichever thread flushes the session's queue
(see ``session.py``), so a WebSocket costs no extra thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import rfc6455, wsgi_servers
from .errors import BadRequest
from .packets import DecodeError, Packet, PacketType, decode_packet, encode_packet
from .request import Request
from .response import StartResponse
from .session import ProtocolViolation, Reason, Session, TransportClosed, reason_for

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger(__name__)

_PROBE = 'probe'


def open_session(server: Server, session: Session, request: Request,
                 start_response: StartResponse) -> Iterable[bytes]:
    """A session that starts on WebSocket: ``open`` is its first frame."""
    try:
        conn = _accept(server, request)
    except BaseException:
        session.close(Reason.TRANSPORT_ERROR, farewell=False)
        raise
    try:
        session.use_writer(_writer(conn, request.b64), conn)
        _serve(session, conn)
    except Exception:
        logger.exception('%s WebSocket failed', session.sid)
        session.close(Reason.TRANSPORT_ERROR, farewell=False)
    finally:
        conn.close()
    return request.adapter.finish_takeover(start_response)


def upgrade(server: Server, session: Session, request: Request,
            start_response: StartResponse) -> Iterable[bytes]:
    """A WebSocket for a polling session: the probe, then the switch."""
    options = server.options
    if not options.allow_upgrades:
        raise BadRequest('upgrades are turned off')
    if not session.reserve_probe():
        # as the reference server does: clients take an HTTP error here for a
        # failed connection, a closed WebSocket for a redundant one
        return _accept_and_close(server, request, start_response,
                                 'session is upgrading or upgraded already')
    try:
        conn = _accept(server, request)
    except BaseException:
        session.abort_upgrade()
        raise
    upgraded = False
    try:
        upgraded = _probe(session, conn, server.backend.monotonic() + options.upgrade_timeout,
                          server.backend.monotonic)
        if upgraded:
            session.use_writer(_writer(conn, request.b64), conn)
            logger.info('%s upgraded to websocket', session.sid)
            _serve(session, conn)
    except Exception:
        logger.exception('%s WebSocket failed', session.sid)
        if upgraded:
            session.close(Reason.TRANSPORT_ERROR, farewell=False)
    finally:
        if not upgraded:
            session.abort_upgrade()
        conn.close()
    return request.adapter.finish_takeover(start_response)


def refuse_after_upgrade(request: Request, start_response: StartResponse,
                         reason: str) -> Iterable[bytes] | None:
    """Refuse a WebSocket whose 101 the server sent already: close it at once.

    None when an HTTP refusal is still possible.
    """
    if not request.adapter.upgraded:
        return None
    try:
        conn = rfc6455.accept(request, max_message_size=None)
        conn.close(1008, reason[:100])
    except Exception:
        logger.debug('closing a refused WebSocket failed', exc_info=True)
    return request.adapter.finish_takeover(start_response)


def _accept_and_close(server: Server, request: Request, start_response: StartResponse,
                      reason: str) -> Iterable[bytes]:
    """Complete the handshake (101), then close the WebSocket at once."""
    conn = _accept(server, request)
    logger.debug('%s second WebSocket closed: %s', request.sid, reason)
    conn.close(1008, reason)
    return request.adapter.finish_takeover(start_response)


def _accept(server: Server, request: Request) -> rfc6455.WSConnection:
    try:
        return rfc6455.accept(request,
                              max_message_size=server.options.max_http_buffer_size,
                              compression=server.options.websocket_compression,
                              backend_hint=server.backend.name)
    except rfc6455.HandshakeError as exc:
        raise BadRequest(f'WebSocket handshake failed: {exc.message}') from None
    except rfc6455.ConnectionClosed as exc:
        # the client left before its 101: nothing to answer, nothing to trace
        logger.info('WebSocket handshake not completed: %s (%s)', exc, exc.__cause__)
        # no 101 went out: the client is gone, as servers take a broken pipe
        raise wsgi_servers.WebSocketTakenOver() from None


def _writer(conn: rfc6455.WSConnection, b64: bool) -> Any:
    send_many = conn.send_many

    def write(batch: list[Packet]) -> None:
        try:
            send_many([encode_packet(packet, b64=b64) for packet in batch])
        except rfc6455.ConnectionClosed as exc:
            if conn.end_reason in (rfc6455.PEER_CLOSE, rfc6455.CONNECTION_LOST):
                raise TransportClosed('the client closed the WebSocket') from exc
            raise
    return write


def _probe(session: Session, conn: rfc6455.WSConnection, deadline: float,
           monotonic: Any) -> bool:
    """Run the probe exchange; True once the client sent ``5``."""
    while True:
        remaining = deadline - monotonic()
        if remaining <= 0:
            logger.debug('%s upgrade timed out', session.sid)
            return False
        try:
            frame = conn.receive(timeout=remaining)
        except TimeoutError:
            logger.debug('%s upgrade timed out', session.sid)
            return False
        if frame is None:
            return False
        try:
            packet = decode_packet(frame)
        except DecodeError:
            return False
        kind = packet.type
        if kind is PacketType.PING and packet.data == _PROBE and not session.upgrading:
            try:
                conn.send(encode_packet(Packet(PacketType.PONG, _PROBE)))
            except OSError:
                return False
            session.start_upgrade()
        elif kind is PacketType.UPGRADE:
            # also without a probe first, as the reference server does; and
            # for a session ending meanwhile (a disconnect() during the probe):
            # the client has switched, so its close packet goes this way
            return not session.ended
        elif kind in (PacketType.CLOSE, PacketType.PING, PacketType.OPEN):
            return False
        # messages, pongs and noops before the upgrade are ignored


def _serve(session: Session, conn: rfc6455.WSConnection) -> None:
    """Read packets until the connection or the session ends."""
    receive = session.receive
    while True:
        frame = conn.receive()
        if frame is None:
            if conn.end_reason == rfc6455.MESSAGE_TOO_BIG:
                session.close(Reason.PAYLOAD_TOO_LARGE, farewell=False)
            else:
                session.close(Reason.TRANSPORT_CLOSE, farewell=False)
            return
        try:
            receive(decode_packet(frame))
        except (DecodeError, ProtocolViolation) as exc:   # RateLimited included
            logger.debug('%s bad packet: %s', session.sid, exc)
            # once the messages before it were handled, the close packet goes
            # out after their replies, then the connection closes and
            # receive() above returns None
            session.close_after_dispatch(reason_for(exc))
