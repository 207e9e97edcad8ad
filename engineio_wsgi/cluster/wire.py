"""What the processes of a cluster tell each other: one JSON object per
message (the inbox's payload), packets inside as ``[type, data]`` with
binary data as ``[type, base64, 1]`` so that bytes stay bytes.

Message kinds (``t``), with the request id ``r`` where an answer is awaited:

* ``begin`` (sid): a POST for the owner starts reading its body; it holds
  the session's POST slot until its ``post``; answered ``reply``.
* ``post`` (sid ``s``, packets ``p``, optional ``e``: the client's payload had
  an undecodable packet after these): a POST served for the owner;
  answered ``reply``.
* ``get`` (sid): a long-poll served for the owner; answered ``ack`` at once,
  then ``reply`` with what the owner drained (``p``) or an error.
* ``cancel`` (request id): the long-poll's client left; nothing is taken for it.
* ``return`` (sid, packets): a drain that reached no client; the owner puts
  the packets back at the head of the queue.
* ``send`` (sid, packets) and ``disconnect`` (sid): from ``Server.send`` /
  ``disconnect`` of another process, or an ``Emitter``.
* ``close`` (sid, reason ``why``): the serving process found the client's
  request bad (body too large, too slow, binary); the owner closes the session.
* ``reply``: ``ok`` true, or ``status``, ``code``, ``message`` of the error
  to answer the client with.

Anything that does not parse is dropped (and counted by the caller).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from ..packets import Packet, PacketType

if TYPE_CHECKING:
    from ..errors import RequestError

Message = dict[str, Any]

#: seconds an owner has to acknowledge a forwarded request
FORWARD_TIMEOUT = 1.0

#: messages about one session that may run the application's code
SESSION_KINDS = frozenset(('post', 'in', 'bad', 'gone', 'send', 'disconnect', 'close'))


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(',', ':')).encode('utf-8')


def decode(data: bytes) -> Message | None:
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get('t'), str):
        return None
    return message


def pack(packets: list[Packet]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for packet in packets:
        data = packet.data
        if isinstance(data, bytes):
            out.append([int(packet.type), base64.b64encode(data).decode('ascii'), 1])
        else:
            out.append([int(packet.type), data])
    return out


def unpack(items: Any) -> list[Packet]:
    """The packets of a message; raises ``ValueError`` for anything malformed."""
    if not isinstance(items, list):
        raise ValueError('packets: expected a list')
    packets = []
    for item in items:
        if not isinstance(item, list) or not 2 <= len(item) <= 3:
            raise ValueError('packet: expected [type, data(, binary)]')
        kind = PacketType(item[0])
        data = item[1]
        if len(item) == 3:
            data = base64.b64decode(data, validate=True)
        elif data is not None and not isinstance(data, str):
            raise ValueError('packet data: expected text')
        packets.append(Packet(kind, data))
    return packets


def carries_data(packets: list[Packet]) -> bool:
    return any(packet.type is not PacketType.NOOP for packet in packets)


def refusal(rid: int, error: RequestError) -> Message:
    """The answer that refuses a request as ``error`` says."""
    return {'t': 'reply', 'r': rid, 'ok': False, 'status': int(error.status),
            'code': error.code, 'message': error.message}
