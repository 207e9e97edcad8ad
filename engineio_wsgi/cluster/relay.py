"""WebSocket connections for another node's session: relayed over Redis.

A WebSocket for a polling session (an upgrade) can land on any process. The
process it lands on (the relay) serves the connection for the session's
whole life; the owner keeps the session and swaps its transport to a
``RemoteTransport``, whose deliveries are published to the relay. Chosen
over passing the socket to the owner (``socket.send_fds``): it works across
hosts as well as on one, and with every worker class (gevent, gthread),
at the cost of two Redis hops per message.

The upgrade sequence holds across processes: the owner reserves the probe
for one WebSocket (a second one is accepted and closed, as locally); the
relay answers ``2probe`` with ``3probe`` and the owner's polling pauses;
``5`` makes the owner switch (what is still queued goes out on the
WebSocket, in order); a failed or timed-out probe resumes polling, and the
owner resumes it by itself if the relay never says (it died).

While relayed: each client packet is published to the owner (``in``),
which applies it as its own WebSocket reader would; the owner's batches
(``out``) are written by one writer task here. The connection ends the
session (``gone``) when the client closes it; the session's end closes the
connection (``end``, or the close packet). The relay checks every few
seconds that the owner still listens, and the owner's publish reaching no
relay ends the session ("transport close").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import rfc6455
from .. import websocket_transport as websocket
from ..errors import BadRequest, RequestError
from ..packets import DecodeError, Packet, PacketType, decode_packet, encode_packet
from ..reasons import Reason
from ..response import StartResponse
from ..transport import ProtocolViolation, QueueWriter, TransportClosed
from . import wire
from .inbox import ClusterUnavailable

if TYPE_CHECKING:
    from ..request import Request
    from ..session import Session
    from .contract import Link

logger = logging.getLogger(__name__)

#: seconds between the relay's checks that the owner still listens
LIVENESS_PERIOD = 3.0


class _ProbeSide:
    """What the probe exchange (websocket.probe) sees of a remote session."""

    def __init__(self, link: Link, owner: str, sid: str, relay_id: int) -> None:
        self.sid = sid
        self.polling = self
        self.paused = False
        self.ended = False
        self._link = link
        self._owner = owner
        self._relay_id = relay_id

    def pause(self) -> None:
        self.paused = True
        self._link.publish_quietly(self._owner, {'t': 'pause', 's': self.sid,
                                                 'relay': self._relay_id})


def serve(link: Link, request: Request, start_response: StartResponse,
          owner: str) -> Iterable[bytes]:
    """A WebSocket for ``owner``'s session: the probe here, then the relay."""
    options = link.options
    backend = link.backend()
    sid = request.sid
    assert sid is not None
    if not options.allow_upgrades:
        raise BadRequest('upgrades are turned off')
    relay_id, outgoing = link.open_relay()
    try:
        answer = link.call(owner, {'t': 'ws', 's': sid, 'relay': relay_id})
        if answer.get('busy'):
            return websocket.accept_and_close(options, backend.name, request, start_response,
                                              'session is upgrading or upgraded already')
        resume = {'t': 'resume', 's': sid, 'relay': relay_id}
        try:
            conn = websocket.accept(options, backend.name, request)
        except BaseException:
            link.publish_quietly(owner, resume)
            raise
        upgraded = False
        try:
            probe = _ProbeSide(link, owner, sid, relay_id)
            upgraded = websocket.probe(probe, conn,  # type: ignore[arg-type]
                                       backend.monotonic() + options.upgrade_timeout,
                                       backend.monotonic, options.trace)
            if upgraded:
                link.call(owner, {'t': 'upgrade', 's': sid, 'relay': relay_id})
                logger.info('%s upgraded to websocket, relayed for %s', sid, owner)
                _Relay(link, owner, sid, relay_id, conn, outgoing, request.b64).run()
        except RequestError as exc:
            logger.debug('%s relayed upgrade refused: %s', sid, exc.detail)
        except Exception:
            logger.exception('%s relayed WebSocket failed', sid)
        finally:
            if not upgraded:
                link.publish_quietly(owner, resume)
            conn.close()
        return request.adapter.finish_takeover(start_response)
    finally:
        link.close_relay(relay_id)


class _Relay:
    """One relayed connection: this thread reads, a writer task writes."""

    def __init__(self, link: Link, owner: str, sid: str, relay_id: int, conn: Any,
                 outgoing: Any, b64: bool) -> None:
        self.link = link
        self.owner = owner
        self.sid = sid
        self.relay_id = relay_id
        self.conn = conn
        self.outgoing = outgoing
        self.b64 = b64

    def _tell(self, message: wire.Message) -> bool:
        message.update(s=self.sid, relay=self.relay_id)
        try:
            return self.link.publish(self.owner, message)
        except ClusterUnavailable:
            return False

    def run(self) -> None:
        writer = self.link.backend().spawn(self._write)
        try:
            self._read()
        finally:
            self.outgoing.put(None)
            writer.join(5.0)

    def _read(self) -> None:
        conn = self.conn
        while True:
            try:
                frame = conn.receive(timeout=LIVENESS_PERIOD)
            except TimeoutError:
                try:
                    alive = self.link.listening(self.owner)
                except RequestError:
                    alive = False
                if not alive:
                    logger.info('%s owner %s gone: relayed WebSocket closed', self.sid,
                                self.owner)
                    conn.close(1011, 'session lost')
                    return
                continue
            if frame is None:
                reason = (Reason.PAYLOAD_TOO_LARGE if conn.end_reason == rfc6455.MESSAGE_TOO_BIG
                          else Reason.TRANSPORT_CLOSE)
                self._tell({'t': 'gone', 'why': reason.value})
                return
            try:
                packet = decode_packet(frame)
            except DecodeError as exc:
                self._tell({'t': 'bad', 'e': str(exc)})
                continue
            if not self._tell({'t': 'in', 'p': wire.pack([packet])}):
                conn.close(1011, 'session lost')
                return

    def _write(self) -> None:
        conn = self.conn
        while True:
            item = self.outgoing.get()
            if item is None:
                return
            if item == 'end':
                conn.close()
                return
            try:
                conn.send_many([encode_packet(packet, b64=self.b64) for packet in item])
            except Exception as exc:
                logger.debug('%s relayed write failed: %r', self.sid, exc)
                self._tell({'t': 'gone', 'why': Reason.TRANSPORT_ERROR.value})
                conn.abort()
                return
            if any(packet.type is PacketType.CLOSE for packet in item):
                conn.close()
                return


class RemoteTransport(QueueWriter):
    """The owner's side of a relayed WebSocket: the session's transport while
    its client is connected to another process (see transport.py); the writer
    task of ``QueueWriter`` publishes each batch to the relaying process."""

    def __init__(self, link: Link, session: Session, relay_node: str,
                 relay_id: int) -> None:
        super().__init__(session)
        self._link = link
        self.relay_node = relay_node
        self.relay_id = relay_id
        self._ended = False

    def carries_close(self, reason: Reason) -> bool:
        return True

    def attached(self, opening: Packet | None) -> None:
        self.send()

    def send(self) -> None:
        # A task of its own, not one of the shared workers: those may all be
        # running the application's handlers (threading: max_worker_threads),
        # and a ping must reach the client meanwhile, as a local WebSocket's
        # does. A publish never waits on a client, so the task is short; one
        # at most per session at a time (``queued``).
        try:
            self._session.backend.spawn(self._flush)
        except Exception:   # e.g. no thread can be started now: a shared one, later
            self._session.backend.run_soon(self._flush)

    def wake(self) -> None:
        pass

    def close(self) -> None:
        self._end()

    def abort(self) -> None:
        self._session.backend.run_soon(self._end)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._link.publish_quietly(self.relay_node, {'t': 'end', 's': self._session.sid,
                                                     'relay': self.relay_id})

    def _write(self, batch: list[Packet]) -> None:
        session = self._session
        message = {'t': 'out', 's': session.sid, 'relay': self.relay_id,
                   'p': wire.pack(batch)}
        try:
            delivered = self._link.publish(self.relay_node, message)
        except ClusterUnavailable as exc:
            logger.debug('%s relayed batch lost: %s', session.sid, exc)
            delivered = False
        if not delivered:
            raise TransportClosed('the relaying process is gone')

    def _failed(self, exc: Exception) -> None:
        self._ended = True
        super()._failed(exc)

    def _delivered(self) -> None:
        self._ended = True   # the close packet ends the relayed connection
        super()._delivered()


def carries_pong(message: wire.Message) -> bool:
    """Whether a relay's ``in`` message is a pong (the relay publishes each
    client packet on its own); ``wire.decode`` checked it already."""
    packets = message['p']
    return len(packets) == 1 and packets[0].type is PacketType.PONG


def owner_message(link: Link, source: str, message: wire.Message,
                  session: Session | None) -> None:
    """Messages of a relay to the owner about a relayed connection (``in``,
    ``bad``, ``gone``); dropped unless the session is still carried by it."""
    if session is None:
        return
    channel = session.channel
    if not (isinstance(channel, RemoteTransport) and channel.relay_node == source
            and channel.relay_id == message['relay']):
        return
    kind = message['t']
    if kind == 'gone':
        session.transport_closed(message['why'])
        return
    try:
        if kind == 'bad':
            raise DecodeError(message.get('e', 'undecodable packet'))
        for packet in message['p']:
            session.receive(packet)
    except (DecodeError, ProtocolViolation) as exc:   # RateLimited included
        logger.debug('%s bad relayed packet: %s', session.sid, exc)
        session.bad_input(exc)


__all__ = ['RemoteTransport', 'owner_message', 'serve']
