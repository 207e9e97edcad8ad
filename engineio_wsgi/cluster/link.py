"""One ``Server``'s place in a cluster: the owner keeps the session, the other
processes serve its client's requests for it over Redis.

* The owner of a session is the process that opened it: its heartbeat, queue
  and the application's handlers run there only. The sid's first characters
  name it (``node.owner_of``), so no lookup is needed.
* A process that receives a request for another node's sid serves it *for*
  the owner (``serve``): a POST takes the owner's POST slot (``begin``), its
  body is read and decoded here (bad input is refused before it reaches
  Redis) and its packets are applied by the owner, as a local POST's; a GET
  takes the owner's read slot and answers with what the owner drains. So one
  GET and one POST at a time hold across processes. WebSocket requests for
  another node's sid are relayed (``relay``).
* ``send``/``disconnect`` for another node's sid publish to it.

Every wait is bounded: an owner that does not acknowledge within
``FORWARD_TIMEOUT`` is taken for gone (400 code 1); ``PUBLISH`` reaching no
subscriber means it is gone (400 code 1 at once); a long-poll forwarded to an
owner checks every ``FORWARD_TIMEOUT`` that the owner still listens. When
Redis cannot be reached, forwarded requests get 503 code 3 at once, and so
do polling handshakes while this process does not listen (``admit_polling``);
the sessions whose client talks to their owner carry on.

Packets drained for a long-poll whose answer reaches nobody (the serving
process died or its client left) are put back at the head of the owner's
queue: the owner puts them back when its ``PUBLISH`` of the answer reaches no
subscriber, the serving process returns them when its client has gone or
its wait has ended.

The inbox listener only dispatches: what may wait (a long-poll, a reply's
``PUBLISH``, the application's handlers) runs on a task of the server's
backend. The owner's half of each exchange is in owner.py.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .. import logs
from ..backends import Backend, threading_patched
from ..errors import RequestError, ServiceUnavailable, UnknownSid
from ..packets import Packet, PacketType
from ..reasons import Reason
from ..response import StartResponse
from . import forward, wire
from .connect import describe, redis_client
from .inbox import ClusterUnavailable, Inbox, Sender, channel
from .node import node_id, owner_of
from .owner import OwnerSide

if TYPE_CHECKING:
    from ..options import Options
    from ..registry import SessionRegistry
    from ..request import Request
    from ..response import Headers

logger = logging.getLogger(__name__)

FORWARD_TIMEOUT = wire.FORWARD_TIMEOUT
#: seconds the first request of a process waits for its inbox to listen
#: (a sid it hands out must be reachable from the other processes)
STARTUP_WAIT = 2.0

NOOP = Packet(PacketType.NOOP)


class Forwarded(RequestError):
    """The owner's refusal of a request served for it, answered as is."""

    def __init__(self, status: int, code: int, message: Any) -> None:
        super().__init__(f'refused by the owner: {message}', message=message)
        self.status = HTTPStatus(status)
        self.code = code


class _Waiter:
    """The answers to one forwarded request, in arrival order."""

    def __init__(self, backend: Backend) -> None:
        self._event = backend.event()
        self._answers: deque[wire.Message] = deque()

    def put(self, message: wire.Message) -> None:
        self._answers.append(message)
        self._event.set()

    def next(self, timeout: float) -> wire.Message | None:
        if not self._answers:
            self._event.wait(timeout)
        if not self._answers:
            return None
        message = self._answers.popleft()
        if not self._answers:
            self._event.clear()
            if self._answers:   # one arrived between the two lines above
                self._event.set()
        return message


class ClusterLink:
    """The cluster side of one ``Server`` (``Server(cluster=...)``)."""

    def __init__(self, cluster: Any, options: Options, sessions: SessionRegistry,
                 backend_for: Callable[[Any], Backend]) -> None:
        # a Redis that stops answering fails a forwarded request about as fast
        # as an owner that stops answering (the command is tried twice)
        self.client = redis_client(cluster, socket_timeout=FORWARD_TIMEOUT)
        #: where Redis is, for the log (no password)
        self.where = describe(cluster)
        #: this process does not listen on Redis, and said so
        self._down = False
        self.options = options
        self.sessions = sessions
        self._backend_for = backend_for
        self._pid: int | None = None
        self._locks: dict[str, Any] = {}
        self.node = ''
        self._sender: Sender | None = None
        self.inbox: Inbox | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Waiter] = {}
        #: WebSockets relayed here for other nodes' sessions: relay id -> outgoing queue
        self._relays: dict[int, Any] = {}
        #: what this process does for its own sessions' requests served elsewhere
        self.owner = OwnerSide(self)
        os.register_at_fork(after_in_child=self._forget)

    def lock(self, name: str) -> Any:
        """A lock made at first use, after fork: with gunicorn's --preload the
        Server is built before the gevent worker patches threading, and an
        unpatched lock held while a greenlet waits would block the worker."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks.setdefault(name, threading.Lock())
        return lock

    def _forget(self) -> None:
        # a forked child is another node: its own inbox, nothing pending
        self._locks = {}
        self._pending = {}
        self._relays = {}
        self._down = False
        self.owner.forget()

    # -- starting (after fork, at the first request or send) -------------------------

    def start(self) -> None:
        """Listen on this node's inbox, once per process; the first call waits
        (at most ``STARTUP_WAIT``) until it listens."""
        pid = os.getpid()
        if self._pid == pid:
            return
        with self.lock('start'):
            if self._pid == pid:
                return
            self.node = node_id()
            # its warnings (Redis lost) may come before any request routed the log
            logs.route_to_server_log()
            if self.backend().name == 'gevent' and not threading_patched():
                # the inbox would be an OS thread waking greenlets: not safe
                logger.error('cluster= under gevent needs the standard library '
                             'monkey-patched (gevent.monkey.patch_all(), as gunicorn -k '
                             'gevent does); without it requests served for other '
                             'processes may hang')
            self._sender = Sender(self.client, self.node)
            self.inbox = Inbox(self.client, self.node, self._received)
            self.inbox.start()
            # other requests wait here too: no sid goes out before others can reach it
            if not self._listening_soon(self.inbox):
                self._report(False)
            else:
                logger.info('cluster node %s listening', self.node)
                self._check_unique()
            self._pid = pid

    def ready(self) -> bool:
        """Whether this process listens on Redis, i.e. a sid it hands out
        can be reached from the other processes (starts listening if needed)."""
        self.start()
        inbox = self.inbox
        listening = inbox is not None and inbox.subscribed.is_set()
        if listening == self._down:
            self._report(listening)
        return listening

    def admit_polling(self) -> None:
        """Refuse a new polling session (503) while this process does not
        listen on Redis: the other processes could not reach it, so the
        client's next request through another one would fail; after a 503
        the client retries the handshake and gets a session that works. A
        WebSocket handshake is not refused: that session lives on its one
        connection."""
        if not self.ready():
            raise ServiceUnavailable('cluster: Redis unreachable, no session opened')

    def _report(self, listening: bool) -> None:
        """One line when this process stops or starts listening on Redis."""
        if listening:
            if self._down:
                self._down = False
                logger.info('cluster node %s: Redis at %s answers; new sessions are accepted',
                            self.node, self.where)
            return
        if self._down:
            return
        self._down = True
        inbox = self.inbox
        why = inbox.last_error if inbox is not None and inbox.last_error else \
            f'no answer within {STARTUP_WAIT:g} s'
        logger.error('cluster node %s: Redis at %s is unreachable (%s): new polling sessions '
                     'are refused with 503 until it answers (WebSocket-only ones are served '
                     'here); requests for other processes\' sessions get 503, this '
                     'process\'s open sessions carry on',
                     self.node, self.where, why)

    def _check_unique(self) -> None:
        """Node ids are 24 random bits: two live processes may draw the same
        one (about 1 in 30,000 for 100 processes); say so loudly if they did."""
        try:
            listeners = int(self.client.pubsub_numsub(channel(self.node))[0][1])
        except Exception:
            return   # Redis went away meanwhile: nothing to tell
        if listeners > 1:
            logger.error('cluster node id %s is used by another process too: requests for '
                         'their sessions may go astray; restart this process', self.node)

    @staticmethod
    def _listening_soon(inbox: Inbox) -> bool:
        """Wait until the inbox listens; not once Redis refused it (no wait
        while Redis is away: the inbox keeps trying in the background)."""
        deadline = time.monotonic() + STARTUP_WAIT
        while not inbox.subscribed.wait(0.02):
            if inbox.reconnects or time.monotonic() > deadline:
                return False
        return True

    def owner_elsewhere(self, sid: str) -> str | None:
        """The node that owns ``sid`` when it is another one."""
        owner = owner_of(sid)
        return owner if owner is not None and owner != node_id() else None

    def backend(self) -> Backend:
        return self._backend_for(None)

    def publish(self, target: str, message: wire.Message) -> bool:
        """True when ``target`` listens; raises ``ClusterUnavailable``."""
        self.start()
        assert self._sender is not None
        return self._sender.send(target, wire.encode(message))

    def publish_quietly(self, target: str, message: wire.Message) -> bool:
        try:
            return self.publish(target, message)
        except ClusterUnavailable as exc:
            logger.debug('cluster: message to %s not sent: %s', target, exc)
            return False

    # -- the application's API for other nodes' sessions -----------------------------

    def send(self, sid: str, packets: list[Packet]) -> bool:
        """Queue packets on another node's session; False when that node is gone."""
        owner = owner_of(sid)
        if owner is None:
            return False
        return self.publish(owner, {'t': 'send', 's': sid, 'p': wire.pack(packets)})

    def disconnect(self, sid: str) -> bool:
        owner = owner_of(sid)
        if owner is None:
            return False
        return self.publish(owner, {'t': 'disconnect', 's': sid})

    # -- serving a request for another node ------------------------------------------

    def serve(self, request: Request, start_response: StartResponse, headers: Headers,
              owner: str) -> Iterable[bytes]:
        """Answer a request for a session of ``owner``; raises ``RequestError``."""
        return forward.serve(self, request, start_response, headers, owner)

    def _register(self) -> tuple[int, _Waiter]:
        if self.inbox is None or not self.inbox.subscribed.is_set():
            # the owner's answer could not reach this process
            raise ServiceUnavailable('cluster: Redis unreachable')
        rid = next(self._ids)
        waiter = self._pending[rid] = _Waiter(self.backend())
        return rid, waiter

    def _ask(self, owner: str, message: wire.Message) -> None:
        """Publish a request to its owner; raises ``RequestError`` when it cannot."""
        try:
            listening = self.publish(owner, message)
        except ClusterUnavailable:
            raise ServiceUnavailable('cluster: Redis unreachable') from None
        if not listening:
            raise UnknownSid('the process that owns the session is gone')

    def call(self, owner: str, message: wire.Message,
             peer_gone: Callable[[], bool] | None = None) -> wire.Message:
        """Send a request to the owner and wait for its answer.

        The owner acknowledges at once (``ack``) and answers when done:
        a long-poll when it has packets, a POST once its packets were
        applied (a connect handler may take a while). No acknowledgement
        within ``FORWARD_TIMEOUT``, or the owner no longer listening while
        the answer is awaited (checked every ``FORWARD_TIMEOUT``): 400 code 1.
        ``peer_gone``: the client left; the owner is told (``cancel``).
        """
        rid, waiter = self._register()
        message['r'] = rid
        backend = self.backend()
        cancelled = False
        try:
            self._ask(owner, message)
            answer = waiter.next(FORWARD_TIMEOUT)
            if answer is None:
                raise UnknownSid('the process that owns the session did not answer')
            # the owner answers by the heartbeat's verdict at the latest
            deadline = (backend.monotonic() + self.options.ping_interval
                        + self.options.ping_timeout + FORWARD_TIMEOUT)
            while answer['t'] == 'ack':
                answer = waiter.next(FORWARD_TIMEOUT)
                if answer is not None:
                    continue
                answer = {'t': 'ack'}
                if backend.monotonic() > deadline or not self.listening(owner):
                    self.publish_quietly(owner, {'t': 'cancel', 'r': rid})
                    raise UnknownSid('the process that owns the session is gone')
                if not cancelled and peer_gone is not None and peer_gone():
                    cancelled = True
                    self.publish_quietly(owner, {'t': 'cancel', 'r': rid})
        finally:
            self._pending.pop(rid, None)
        return _result(answer)

    def open_relay(self) -> tuple[int, Any]:
        """A relay id and the queue the owner's batches for it arrive on."""
        rid = next(self._ids)
        outgoing = self._relays[rid] = self.backend().queue()
        return rid, outgoing

    def close_relay(self, rid: int) -> None:
        self._relays.pop(rid, None)

    def close_remote(self, owner: str, sid: str, reason: Reason) -> None:
        """Tell the owner to close a session whose client sent bad input here."""
        self.publish_quietly(owner, {'t': 'close', 's': sid, 'why': reason.value})

    def listening(self, owner: str) -> bool:
        try:
            counts = self.client.pubsub_numsub(channel(owner))
        except Exception as exc:
            logger.debug('cluster: could not ask Redis about %s: %s', owner, exc)
            raise ServiceUnavailable('cluster: Redis unreachable') from None
        return bool(counts and int(counts[0][1]) > 0)

    # -- messages from other nodes ----------------------------------------------------

    def _received(self, source: str, payload: bytes) -> None:
        # raises wire.MalformedMessage (the inbox logs it); anything else
        # raised from here on is a bug, logged with its traceback
        self._dispatch(source, wire.decode(payload))

    def _dispatch(self, source: str, message: wire.Message) -> None:
        kind = message['t']
        if kind in ('reply', 'ack'):
            waiter = self._pending.get(message['r'])
            if waiter is not None:
                waiter.put(message)
            elif kind == 'reply' and wire.carries_data(message.get('p', [])):
                # a drain whose long-poll ended meanwhile: back to the owner
                self.backend().run_soon(self.publish_quietly, source, {
                    't': 'return', 's': message['s'], 'p': wire.pack(message['p'])})
            return
        if kind == 'cancel':
            gone = self.owner.gets.get((source, message['r']))
            if gone is not None:
                gone.set()
                session = self.sessions.get(message.get('s', ''))
                if session is not None:
                    session.channel.wake()
            return
        owner = self.owner
        sid = message['s']
        if kind in ('out', 'end'):
            outgoing = self._relays.get(message['relay'])
            if outgoing is not None:
                outgoing.put(message['p'] if kind == 'out' else 'end')
            elif kind == 'out':
                # the connection is gone: the owner's session with it
                self.backend().run_soon(self.publish_quietly, source, {
                    't': 'gone', 's': sid, 'relay': message['relay'],
                    'why': Reason.TRANSPORT_CLOSE.value})
            return
        owner.receive(source, message)


def _result(answer: wire.Message) -> wire.Message:
    if answer['ok']:
        return answer
    raise Forwarded(answer['status'], answer['code'], answer.get('message'))
