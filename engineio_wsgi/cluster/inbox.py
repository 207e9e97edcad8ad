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
* Order: Redis delivers one channel's messages in publish order; a ``Sender``
  publishes one message at a time, so its messages arrive in the order it
  sent them.
* The price: at most once. What is published while the node is not
  subscribed (Redis restarting, the inbox reconnecting) is lost and the
  sender learns it from the 0 (or from the error). The forwarded requests this
  carries are answered by their own deadline anyway; they must not be
  replayed later (a POST replayed after its client was told it failed would
  be delivered twice).

Never twice: redis-py retries a command once after a connection error, and a
``PUBLISH`` whose reply was lost may have been delivered. Each message carries
its sender's node id and a sequence number; the inbox drops a number it has
already seen from that sender.

Wire format: ``b'E1'``, the 4-character sender node id, the sequence number
(8 bytes, big-endian), then the payload bytes as given.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import struct
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

PREFIX = 'engineio_wsgi'
MAGIC = b'E1'
NODE_LENGTH = 4
_HEADER = struct.Struct('>Q')
HEADER_LENGTH = len(MAGIC) + NODE_LENGTH + _HEADER.size
#: senders whose last sequence number an inbox remembers
MAX_SENDERS = 10_000


#: one sequence per process (its node id): every Sender of the process shares
#: it, and publishes one message at a time, so sequence order is publish order
_seq = 0
#: made at first use, not at import or fork: with gunicorn's --preload both
#: happen before the gevent worker patches threading, and an unpatched lock
#: held across a PUBLISH (which yields to other greenlets) would block the
#: worker's only thread
_publish_lock: Any = None


def _forget_sequence() -> None:
    global _seq, _publish_lock
    _seq = 0     # a forked child is another node
    _publish_lock = None


def _lock() -> Any:
    global _publish_lock
    lock = _publish_lock
    if lock is None:
        # no switch between the test and the assignment under gevent; under
        # threads a second lock made at the same moment is dropped at once
        lock = _publish_lock = _publish_lock or threading.Lock()
    return lock


os.register_at_fork(after_in_child=_forget_sequence)


class ClusterUnavailable(ConnectionError):
    """Redis could not be reached: the message was not sent."""


def channel(node: str, prefix: str = PREFIX) -> str:
    return f'{prefix}#{node}'


def encode(source: str, seq: int, payload: bytes) -> bytes:
    if len(source) != NODE_LENGTH or not source.isascii():
        raise ValueError(f'node id {source!r}: expected {NODE_LENGTH} ASCII characters')
    return MAGIC + source.encode('ascii') + _HEADER.pack(seq) + payload


def decode(data: bytes) -> tuple[str, int, bytes] | None:
    """(source, seq, payload), or None for anything that is not a message."""
    if not isinstance(data, bytes) or len(data) < HEADER_LENGTH or not data.startswith(MAGIC):
        return None
    try:
        source = data[len(MAGIC):len(MAGIC) + NODE_LENGTH].decode('ascii')
    except UnicodeDecodeError:
        return None
    (seq,) = _HEADER.unpack_from(data, len(MAGIC) + NODE_LENGTH)
    return source, seq, data[HEADER_LENGTH:]


def _connection_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions
    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class Sender:
    """Sends to nodes' inboxes, in order: the process publishes one message at
    a time (a lock held across one ``PUBLISH``)."""

    def __init__(self, client: Any, node: str, prefix: str = PREFIX) -> None:
        self.client = client
        self.node = node
        self.prefix = prefix

    def send(self, target: str, payload: bytes) -> bool:
        """True when the target's inbox received it; False when no inbox of
        that node listens (the node is gone). Raises ``ClusterUnavailable``
        when Redis cannot be reached."""
        global _seq
        errors = _connection_errors()
        with _lock():
            _seq += 1
            data = encode(self.node, _seq, payload)
            try:
                receivers = self.client.publish(channel(target, self.prefix), data)
            except errors as exc:
                raise ClusterUnavailable(f'Redis unreachable: {exc}') from exc
        return int(receivers) > 0


Handler = Callable[[str, bytes], None]


class Inbox:
    """This node's inbox: a thread (a greenlet under gevent) that listens and
    calls ``handler(source_node, payload)`` for each message, in order.

    The handler runs on the listener: it must not block (hand work off).
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
        self._last_seq: collections.OrderedDict[str, int] = collections.OrderedDict()
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
                self.subscribed.clear()
                self.reconnects += 1
                if self.reconnects == 1 or logger.isEnabledFor(logging.DEBUG):
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
        decoded = decode(data)
        if decoded is None:
            self.dropped_malformed += 1
            return
        source, seq, payload = decoded
        last = self._last_seq.get(source)
        if last is not None and seq <= last:
            self.dropped_duplicate += 1
            return
        self._last_seq[source] = seq
        self._last_seq.move_to_end(source)
        if len(self._last_seq) > MAX_SENDERS:
            self._last_seq.popitem(last=False)
        self.received += 1
        try:
            self.handler(source, payload)
        except Exception:
            logger.exception('cluster inbox %s: the handler failed on a message from %s',
                             self.node, source)
