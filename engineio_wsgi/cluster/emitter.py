"""Sending to the sessions of a cluster from a process that serves none (a
Celery worker, a cron job): ``Emitter(cluster).send(sid, data)``.

Write-only: it never listens, so it needs no thread and no request. Each
call publishes one message to the process that owns the session (its sid
names it) and returns True when that process took it, False when it is gone
(and its sessions with it); it raises ``ClusterUnavailable`` when Redis
cannot be reached. The messages of one emitter reach the owner in the order
they were sent.
"""

from __future__ import annotations

from typing import Any

from ..packets import Packet, PacketType
from . import wire
from .connect import redis_client
from .inbox import Sender
from .node import node_id, owner_of


class Emitter:
    """Write-only access to a cluster's sessions (see the module)."""

    def __init__(self, cluster: Any) -> None:
        self.client = redis_client(cluster)

    def _publish(self, sid: str, message: wire.Message) -> bool:
        owner = owner_of(sid)
        if owner is None:
            return False   # no process of a cluster issues such a sid
        # the node id is this process's (drawn after any fork), the sequence
        # numbers and the incarnation they count under the process's own: in
        # order, never twice, none taken for an older process's
        return Sender(self.client, node_id()).send(owner, wire.encode(message))

    def send(self, sid: str, data: str | bytes) -> bool:
        """Send a message to the session ``sid``."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, (str, bytes)):
            raise TypeError(f'message data must be str or bytes, not {type(data).__name__}')
        if isinstance(data, str):
            data.encode('utf-8')   # lone surrogates have no UTF-8 form: refused here
        return self._publish(sid, {'t': 'send', 's': sid,
                                   'p': wire.pack([Packet(PacketType.MESSAGE, data)])})

    def send_packet(self, sid: str, pkt: Any) -> bool:
        """A message packet built the python-engineio way (``packet_type`` 4, ``data``)."""
        if pkt.packet_type != PacketType.MESSAGE:
            raise ValueError(f'send_packet() sends MESSAGE (4) packets, not type '
                             f'{pkt.packet_type!r}; use disconnect() to close a session')
        return self.send(sid, pkt.data)

    def disconnect(self, sid: str) -> bool:
        """End the session ``sid`` (its client receives ``1``)."""
        return self._publish(sid, {'t': 'disconnect', 's': sid})
