"""Messages to one node over Redis Pub/Sub: in order per sender, refused at
once when the node is gone, never delivered twice.

Why Pub/Sub on one channel per node (``<prefix>#<node>``) and not a Stream
per node:

* Fail fast for free: ``PUBLISH`` answers how many subscribers received the
  message. A node's inbox is its subscription; when the node dies (even by
  SIGKILL) the kernel closes its connection and Redis drops the subscription,
  so the next ``PUBLISH`` to it answers 0 and the sender knows at once. A
  Stream keeps accepting ``XADD`` for a dead node; telling it is gone needs a
  liveness key with a TTL, i.e. seconds of doubt and a second round trip.
* One round trip per message (``PUBLISH``), no acknowledgement, no trimming,
  nothing left in Redis for nodes that are gone.
* Order: Redis delivers one channel's messages in publish order; a process
  publishes one message at a time to each node, so its messages arrive in
  the order it sent them. Messages to different nodes do not wait for one
  another (each takes a connection of its own from redis-py's pool): one
  slow round trip delays only what goes to the same node.
* The price: at most once. What is published while the node is not
  subscribed (Redis restarting, the inbox reconnecting) is lost and the
  sender learns it from the 0 (or from the error). The forwarded requests this
  carries are answered by their own deadline anyway; they must not be
  replayed later (a POST replayed after its client was told it failed would
  be delivered twice).

Never twice: redis-py retries a command once after a connection error, and a
``PUBLISH`` whose reply was lost may have been delivered. Each message carries
its sender's node id, the sender's incarnation and a sequence number; the
inbox drops a number it has already seen from that (node id, incarnation).
The incarnation is 64 random bits drawn at a process's first message (and
anew in a forked child, with the sequence starting over): node ids are only
24 bits and drawn again by every new process, so a new process (a restarted
worker, an ``Emitter`` in a cron job) may draw the node id of one the inbox
remembers; its first messages are not taken for old ones.

The frame (wire.py) is read here; a frame or payload that does not decode is
dropped, counted, and logged at WARNING with its kind and sender, at most
once a minute per sender (whoever can publish could otherwise fill the log).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .wire import MalformedMessage, frame, unframe

logger = logging.getLogger(__name__)

PREFIX = 'engineio_wsgi'
#: senders (node id, incarnation) whose last sequence number an inbox remembers
MAX_SENDERS = 10_000
#: seconds between two warnings about one sender's malformed messages
WARNING_PERIOD = 60.0


#: one incarnation and one sequence per process: every Sender of the process
#: shares them; numbers are taken while the target's lock is held, so to each
#: target they go up in publish order; the incarnation is drawn at the first
#: message
_incarnation: int | None = None
_seq = 0
#: made at first use, not at import or fork: with gunicorn's --preload both
#: happen before the gevent worker patches threading, and an unpatched lock
#: held across a PUBLISH (which yields to other greenlets) would block the
#: worker's only thread
_target_locks: TargetLocks | None = None
#: held only while a number is taken (no switch to another greenlet inside,
#: so even one made before gevent patched threading never blocks the worker)
_number_lock = threading.Lock()


class TargetLocks:
    """One lock per target node, held across a ``PUBLISH`` to it; kept only
    while someone holds or waits for it (node ids come and go with
    processes). The table's own lock is never held across a round trip."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        #: target -> [its lock, how many hold it or wait for it]
        self._locks: dict[str, list[Any]] = {}

    @contextlib.contextmanager
    def held(self, target: str) -> Iterator[None]:
        with self._guard:
            entry = self._locks.get(target)
            if entry is None:
                entry = self._locks[target] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[target]

    def __len__(self) -> int:
        return len(self._locks)


def _forget_sequence() -> None:
    global _incarnation, _seq, _target_locks, _number_lock
    _incarnation = None   # a forked child is another process: its own
    _seq = 0
    _target_locks = None
    _number_lock = threading.Lock()   # a thread of the parent may have held it


def _locks() -> TargetLocks:
    global _target_locks
    locks = _target_locks
    if locks is None:
        with _number_lock:   # one table even when threads send their first at once
            if _target_locks is None:
                _target_locks = TargetLocks()
            locks = _target_locks
    return locks


def _next_number() -> tuple[int, int]:
    """This process's incarnation and its next sequence number."""
    global _incarnation, _seq
    with _number_lock:   # never held across a round trip
        if _incarnation is None:
            _incarnation = secrets.randbits(64)
        _seq += 1
        return _incarnation, _seq


os.register_at_fork(after_in_child=_forget_sequence)


class ClusterUnavailable(ConnectionError):
    """Redis could not be reached: the message was not sent."""


def channel(node: str, prefix: str = PREFIX) -> str:
    return f'{prefix}#{node}'


def _connection_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions
    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class Sender:
    """Sends to nodes' inboxes, in order: the process publishes one message at
    a time to each node (its lock held across one ``PUBLISH``)."""

    def __init__(self, client: Any, node: str, prefix: str = PREFIX) -> None:
        self.client = client
        self.node = node
        self.prefix = prefix

    def send(self, target: str, payload: bytes) -> bool:
        """True when the target's inbox received it; False when no inbox of
        that node listens (the node is gone). Raises ``ClusterUnavailable``
        when Redis cannot be reached."""
        errors = _connection_errors()
        with _locks().held(target):
            incarnation, seq = _next_number()
            data = frame(self.node, incarnation, seq, payload)
            try:
                receivers = self.client.publish(channel(target, self.prefix), data)
            except errors as exc:
                raise ClusterUnavailable(f'Redis unreachable: {exc}') from exc
        return int(receivers) > 0


Handler = Callable[[str, bytes], None]


class OncePer:
    """Says yes to a key at most once per ``period`` seconds; remembers at
    most ``size`` keys (the longest unseen go first)."""

    def __init__(self, period: float, size: int = MAX_SENDERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self.size = size
        self.clock = clock
        self._last: collections.OrderedDict[Any, float] = collections.OrderedDict()

    def __call__(self, key: Any) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        if len(self._last) > self.size:
            self._last.popitem(last=False)
        return True


class Inbox:
    """This node's inbox: a thread (a greenlet under gevent) that listens and
    calls ``handler(source_node, payload)`` for each message, in order.

    The handler runs on the listener: it must not block (hand work off). It
    raises ``wire.MalformedMessage`` for a payload that is not a message
    (logged here, as a frame that does not decode is); any other exception
    it raises is a bug, logged with its traceback.
    When Redis goes away the listener reconnects with capped exponential
    backoff (with jitter) until ``stop()``.
    """

    def __init__(self, client: Any, node: str, handler: Handler, prefix: str = PREFIX,
                 min_delay: float = 0.05, max_delay: float = 2.0) -> None:
        self.client = client
        self.node = node
        self.handler = handler
        self.channel = channel(node, prefix)
        self.min_delay = min_delay
        self.max_delay = max_delay
        #: set while subscribed (a sender's message reaches this inbox)
        self.subscribed = threading.Event()
        self.received = 0
        self.dropped_malformed = 0
        self.dropped_duplicate = 0
        self.reconnects = 0
        #: why the last attempt to listen failed
        self.last_error: str | None = None
        self._last_seq: collections.OrderedDict[tuple[str, int], int] = \
            collections.OrderedDict()
        self._warn = OncePer(WARNING_PERIOD)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name='engineio-cluster-inbox',
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        errors = _connection_errors()
        delay = self.min_delay
        while not self._stopping.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                pubsub.subscribe(self.channel)
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is None:
                        continue
                    if message.get('type') == 'subscribe':
                        self.subscribed.set()
                        delay = self.min_delay
                    elif message.get('type') == 'message':
                        self._deliver(message.get('data'))
            except errors as exc:
                # a Redis that never answered is the link's to report (it
                # knows what clients see); a lost one is reported here, once
                lost = self.subscribed.is_set()
                self.subscribed.clear()
                self.last_error = str(exc)
                self.reconnects += 1
                if lost:
                    logger.warning('cluster inbox %s lost Redis (%s); reconnecting',
                                   self.node, exc)
                self._stopping.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.max_delay)
            except Exception:
                # a bug must not end the inbox silently: log, back off, go on
                self.subscribed.clear()
                logger.exception('cluster inbox %s failed; restarting it', self.node)
                self._stopping.wait(self.max_delay)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
        self.subscribed.clear()

    def _deliver(self, data: Any) -> None:
        sender = None
        try:
            message = unframe(data)
            sender = message.sender
            key = (sender, message.incarnation)
            last = self._last_seq.get(key)
            if last is not None and message.seq <= last:
                self.dropped_duplicate += 1
                return
            self._last_seq[key] = message.seq
            self._last_seq.move_to_end(key)
            if len(self._last_seq) > MAX_SENDERS:
                self._last_seq.popitem(last=False)
            self.received += 1
            self.handler(sender, message.payload)
        except MalformedMessage as exc:
            self.dropped_malformed += 1
            self._malformed(exc, sender or exc.sender)
        except Exception:
            logger.exception('cluster inbox %s: the handler failed on a message from %s',
                             self.node, sender)

    def _malformed(self, exc: MalformedMessage, sender: str | None) -> None:
        if not self._warn(sender):
            return
        logger.warning('cluster node %s dropped a malformed message (kind %s) from %s: %s '
                       '(more from this sender within %.0f s are dropped unlogged; '
                       'dropped so far: %d)', self.node,
                       'unknown' if exc.kind is None else repr(exc.kind),
                       'an unknown sender' if sender is None else f'node {sender!r}',
                       exc, self._warn.period, self.dropped_malformed)
