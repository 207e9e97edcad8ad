"""The owner's side of a cluster: what a process does when other processes
serve requests for the sessions it owns (see link.py).

* ``post``, relayed packets (``in``), ``send``, ``disconnect``: applied off
  the inbox listener, in order per session (they may run the application's
  handlers); a relayed pong on the listener, at once (the heartbeat's);
* ``begin``: a POST elsewhere holds the session's POST slot while its body is
  read there;
* ``get``: a long-poll on a task of its own; ``ack`` at once, the drain when
  there is one; packets whose answer reaches nobody are put back;
* ``ws``/``pause``/``resume``/``upgrade``: the probe of a WebSocket on another
  process, then the swap to a ``RemoteTransport`` (relay.py).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .. import polling_transport as polling
from ..errors import BadRequest, RequestError, UnknownSid
from ..lifecycle import State
from ..packets import DecodeError, Packet, PacketType
from ..reasons import Reason
from ..transport import DuplicateRequest, SessionEnded
from . import relay, wire
from .wire import FORWARD_TIMEOUT

if TYPE_CHECKING:
    from ..session import Session
    from .contract import Link

logger = logging.getLogger(__name__)


class OwnerFailed(RequestError):
    """A bug on the owner while it applied a request served elsewhere: that
    request is answered 500, as a bug in a local request is."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    message = 'Internal server error'


def _failed(source: str, message: wire.Message) -> wire.Message:
    """The answer to a request whose applying failed (a bug: logged here,
    with its traceback; call it from an ``except`` block)."""
    logger.exception('%s %r request from %s failed', message['s'], message['t'], source)
    return wire.refusal(message['r'], OwnerFailed('the owner failed'))


class OwnerSide:
    """The owner's half of one ``ClusterLink``."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.options = link.options
        self._sessions = link.sessions
        self.backend = link.backend
        self.publish_quietly = link.publish_quietly
        self.listening = link.listening
        self.forget()

    def forget(self) -> None:
        """After fork: nothing pending."""
        #: long-polls served for other nodes: (node, request id) -> "client left"
        self.gets: dict[tuple[str, int], Any] = {}
        #: probes reserved here for WebSockets on other nodes: (node, relay id) -> session
        self._probes: dict[tuple[str, int], Session] = {}
        #: node -> (when asked, listening): liveness of other nodes, briefly cached
        self._alive: dict[str, tuple[float, bool]] = {}
        #: per session, the application's work in arrival order
        self.in_order = InOrder(self.link)

    def receive(self, source: str, message: wire.Message) -> None:
        """A request from another node about a session of this one (on the
        inbox listener: only dispatches, never waits)."""
        kind = message['t']
        sid = message['s']
        if kind == 'ws':
            self.answer(source, message, self.reserve_probe)
        elif kind in ('pause', 'resume'):
            self.probe_step(source, message)
        elif kind == 'upgrade':
            self.answer(source, message, self.upgrade)
        elif kind == 'get':
            self.backend().spawn(self.guarded, self.serve_get, source, message)
        elif kind == 'return':
            self.put_back(sid, message['p'])
        elif kind == 'begin':
            self.answer(source, message, self.begin_post)
        elif kind == 'in' and relay.carries_pong(message):
            # the heartbeat's, taken as a local WebSocket's reader takes it: on
            # the I/O path, never behind the application's work (which runs
            # in order per session, on the shared workers)
            relay.owner_message(self.link, source, message, self._sessions.get(sid))
        elif kind in wire.SESSION_KINDS:
            if kind == 'post':
                self.end_post(sid)   # the body has been read
                self.backend().run_soon(self.publish_quietly, source,
                                        {'t': 'ack', 'r': message['r']})
            # what may run the application's code (a message, connect or
            # disconnect handler) runs off the listener, in order per session
            self.in_order.run(sid, self.apply, source, message)
        else:
            raise RuntimeError(f'no owner side for {kind!r} messages')

    def apply(self, source: str, message: wire.Message) -> None:
        """A message about one session (see ``wire.SESSION_KINDS``), in order."""
        kind = message['t']
        sid = message['s']
        if kind == 'post':
            self.answer(source, message, self._apply_post)
        elif kind in ('in', 'bad', 'gone'):
            relay.owner_message(self.link, source, message, self._sessions.get(sid))
        elif kind == 'send':
            self._apply_send(sid, message['p'])
        else:
            session = self._sessions.get(sid)
            if session is not None:
                session.close(Reason.SERVER_DISCONNECT if kind == 'disconnect'
                              else message['why'])

    def answer(self, source: str, message: wire.Message,
               apply: Callable[..., wire.Message | None]) -> None:
        """Apply a request at once and publish its answer (off the listener);
        a bug is logged with its traceback and answered 500."""
        try:
            extra = apply(self._sessions.get(message['s']), message, source)
            answer: wire.Message = {'t': 'reply', 'r': message['r'], 'ok': True, **(extra or {})}
        except RequestError as exc:
            answer = wire.refusal(message['r'], exc)
        except Exception:
            answer = _failed(source, message)
        self.backend().run_soon(self.publish_quietly, source, answer)

    def guarded(self, serve: Callable[[str, wire.Message], None], source: str,
                message: wire.Message) -> None:
        """``serve(source, message)`` on a task of its own: a bug is logged
        with its traceback and its request answered 500."""
        try:
            serve(source, message)
        except Exception:
            self.publish_quietly(source, _failed(source, message))

    def _apply_send(self, sid: str, packets: list[Packet]) -> None:
        session = self._sessions.get(sid)
        if session is None or session.closed:
            logger.debug('%s send() from another process to an ended session ignored', sid)
            return
        for packet in packets:   # messages only (wire.decode checked)
            if isinstance(packet.data, str):
                try:
                    session.check_text(packet.data)
                except ValueError as exc:
                    logger.warning('%s message from another process dropped: %s', sid, exc)
                    continue
            session.enqueue(packet)

    def begin_post(self, session: Session | None, message: wire.Message,
                   source: str) -> None:
        """A POST served by ``source`` starts reading its body: it holds the
        session's POST slot until its packets come (one POST at a time, as
        locally), at most ``http_body_timeout``."""
        if session is None or session.ended:
            raise UnknownSid('no such session')
        transport = session.polling
        if session.transport != 'polling' or transport is None:
            raise BadRequest('polling request for a WebSocket session')

        def too_slow() -> None:
            # as a local POST whose body does not arrive: dropped, session closed
            transport.end_post()  # type: ignore[attr-defined]
            session.close(Reason.TRANSPORT_ERROR)
        try:
            transport.begin_post(too_slow)  # type: ignore[attr-defined]
        except SessionEnded:
            raise UnknownSid('session has ended') from None
        except DuplicateRequest:
            session.close(Reason.TRANSPORT_ERROR)
            raise BadRequest('a POST is already in progress on this session') from None

    def end_post(self, sid: str) -> None:
        session = self._sessions.get(sid)
        if session is not None and session.polling is not None:
            session.polling.end_post()  # type: ignore[attr-defined]

    def _apply_post(self, session: Session | None, message: wire.Message,
                    source: str) -> None:
        """A POST's packets, applied as a local POST applies them."""
        if session is None or session.ended:
            raise UnknownSid('no such session')
        if session.transport != 'polling' or session.polling is None:
            raise BadRequest('polling request for a WebSocket session')
        error = message.get('e')
        polling.receive_payload(session, message['p'],
                                None if error is None else DecodeError(error))

    def serve_get(self, source: str, message: wire.Message) -> None:
        """A long-poll served by ``source`` for a session of this node."""
        rid = message['r']
        session = self._sessions.get(message['s'])
        try:
            if session is None or session.ended:
                raise UnknownSid('no such session')
            if not session.admits(polling_get=True):
                raise UnknownSid('session has ended')
            if session.transport != 'polling' or session.polling is None:
                raise BadRequest('polling request for a WebSocket session')
        except RequestError as exc:
            self.publish_quietly(source, wire.refusal(rid, exc))
            return
        if not self.publish_quietly(source, {'t': 'ack', 'r': rid}):
            return
        key = (source, rid)
        cancelled = self.gets[key] = self.backend().event()

        def gone() -> bool:
            # the serving process's client left, or that process itself (a new
            # GET for the session then takes over, as after a dropped connection)
            return cancelled.is_set() or not self._node_alive(source)
        try:
            packets = session.polling.poll(gone)  # type: ignore[attr-defined]
        except DuplicateRequest:
            session.close(Reason.TRANSPORT_ERROR)
            self.publish_quietly(source, wire.refusal(
                rid, BadRequest('a GET is already waiting on this session')))
            return
        finally:
            self.gets.pop(key, None)
        answer = {'t': 'reply', 'r': rid, 's': session.sid, 'ok': True,
                  'p': wire.pack(packets)}
        if not self.publish_quietly(source, answer) and wire.carries_data(packets):
            self.put_back(session.sid, packets)

    # -- WebSockets relayed by other nodes (see relay.py) ------------------------------

    def reserve_probe(self, session: Session | None, message: wire.Message,
                      source: str) -> wire.Message | None:
        """A WebSocket on ``source`` asks to upgrade: reserve the probe, or
        answer ``busy`` (it is accepted and closed there, as locally)."""
        if session is None or session.ended:
            raise UnknownSid('no such session')
        if not session.admits(polling_get=False):
            raise UnknownSid('session has ended')
        polling_transport = session.polling
        if polling_transport is None or not polling_transport.reserve_probe():
            return {'busy': True}
        key = (source, int(message['relay']))
        self._probes[key] = session
        # a relay that dies mid-probe never says: resume polling by ourselves
        self.backend().spawn(self._probe_deadline, key, session)
        return None

    def _probe_deadline(self, key: tuple[str, int], session: Session) -> None:
        self.backend().sleep(self.options.upgrade_timeout + FORWARD_TIMEOUT)
        if self._probes.pop(key, None) is session and session.polling is not None:
            session.polling.resume()

    def probe_step(self, source: str, message: wire.Message) -> None:
        key = (source, int(message['relay']))
        session = self._probes.get(key)
        if session is None or session.polling is None:
            return
        if message['t'] == 'pause':
            session.polling.pause()
        else:
            self._probes.pop(key, None)
            session.polling.resume()

    def upgrade(self, session: Session | None, message: wire.Message,
                source: str) -> None:
        """The client sent ``5`` on ``source``: the session goes on over the relay."""
        rid = int(message['relay'])
        if session is None or self._probes.pop((source, rid), None) is not session:
            raise UnknownSid('no such session')
        if not session.switch(relay.RemoteTransport(self.link, session, source, rid)):
            raise UnknownSid('session has ended')
        logger.info('%s upgraded to websocket, relayed by %s', session.sid, source)

    def _node_alive(self, node: str) -> bool:
        """Whether ``node`` listens; asked of Redis at most once per
        ``FORWARD_TIMEOUT`` per node. True when Redis cannot tell."""
        now = time.monotonic()
        known = self._alive.get(node)
        if known is not None and now - known[0] < FORWARD_TIMEOUT:
            return known[1]
        try:
            alive = self.listening(node)
        except RequestError:
            alive = True
        self._alive[node] = (now, alive)
        if len(self._alive) > 1000:
            self._alive.clear()
        return alive

    def put_back(self, sid: str, packets: list[Packet]) -> None:
        """Packets drained for a long-poll that reached no client: first again."""
        session = self._sessions.get(sid)
        kept = [packet for packet in packets if packet.type is not PacketType.NOOP]
        if session is None or not kept:
            return
        with session.lock:
            if session.state is State.FINISHED:
                return
            session.outbox.extendleft(reversed(kept))
        session.channel.wake()
        logger.debug('%s %d packets put back for the next poll', sid, len(kept))


class InOrder:
    """Runs work for a session on tasks of the backend, one at a time, in the
    order it was asked for: a session's messages reach the application in
    order, and a slow handler delays only its own session."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._queued: dict[str, deque[tuple[Callable[..., None], tuple[Any, ...]]]] = {}

    def run(self, sid: str, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` after what was asked for the same session before it."""
        with self._link.lock('serial'):
            queued = self._queued.get(sid)
            start = queued is None
            if start:
                queued = self._queued[sid] = deque()
            queued.append((fn, args))  # type: ignore[union-attr]
        if start:
            self._link.backend().run_soon(self._drain, sid)

    def _drain(self, sid: str) -> None:
        while True:
            with self._link.lock('serial'):
                queued = self._queued[sid]
                if not queued:
                    del self._queued[sid]
                    return
                fn, args = queued.popleft()
            try:
                fn(*args)
            except Exception:   # a bug: what reaches here was decoded and checked
                logger.exception('cluster: a message for %s failed', sid)
