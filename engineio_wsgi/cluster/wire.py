"""What the processes of a cluster tell each other, and the one place that
tells a message from bytes that are not one.

Each Redis message is a frame: ``b'E2'``, the sender's 4-character node id,
the sender's incarnation (a random 64-bit id drawn at each process start,
anew after fork: see inbox.py), a sequence number (both 8 bytes,
big-endian), then the payload. The payload is one JSON object; packets
inside are ``[type, data]``, binary data ``[type, base64, 1]`` so that bytes
stay bytes. Only processes of one version talk to each other: a frame of
another format is refused as malformed, never guessed at.

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
* ``ws``, ``pause``, ``resume``, ``upgrade``, ``in``, ``bad``, ``gone``,
  ``out``, ``end`` (sid, relay id ``relay``): a relayed WebSocket (relay.py).

``unframe`` and ``decode`` check everything up front and raise
``MalformedMessage`` for anything else: what gets past them is a message the
rest of the code can apply without checking again (packets unpacked, ``why``
a ``Reason``). So an exception while applying a message is a bug, never bad
input.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NamedTuple

from ..packets import Packet, PacketType
from ..reasons import Reason
from ..sids import has_shape

if TYPE_CHECKING:
    from ..errors import RequestError

Message = dict[str, Any]

#: seconds an owner has to acknowledge a forwarded request
FORWARD_TIMEOUT = 1.0

#: messages about one session that may run the application's code
SESSION_KINDS = frozenset(('post', 'in', 'bad', 'gone', 'send', 'disconnect', 'close'))

MAGIC = b'E2'
NODE_LENGTH = 4
_NUMBERS = struct.Struct('>QQ')
HEADER_LENGTH = len(MAGIC) + NODE_LENGTH + _NUMBERS.size


class MalformedMessage(Exception):
    """Bytes from Redis that are not a message: ``kind`` is the message's
    ``t`` when it could be read, ``sender`` the node id in the frame when it
    could be read."""

    def __init__(self, problem: str, kind: str | None = None,
                 sender: str | None = None) -> None:
        super().__init__(problem)
        self.kind = kind
        self.sender = sender


class Frame(NamedTuple):
    sender: str
    incarnation: int
    seq: int
    payload: bytes


def frame(sender: str, incarnation: int, seq: int, payload: bytes) -> bytes:
    if len(sender) != NODE_LENGTH or not sender.isascii():
        raise ValueError(f'node id {sender!r}: expected {NODE_LENGTH} ASCII characters')
    return MAGIC + sender.encode('ascii') + _NUMBERS.pack(incarnation, seq) + payload


def unframe(data: Any) -> Frame:
    """The frame of a Redis message; raises ``MalformedMessage``."""
    if not isinstance(data, bytes):
        raise MalformedMessage(f'a {type(data).__name__}, not bytes')
    try:
        sender: str | None = data[len(MAGIC):len(MAGIC) + NODE_LENGTH].decode('ascii')
    except UnicodeDecodeError:
        sender = None
    if not data.startswith(MAGIC):
        if data[:1] == b'E' and data[1:2].isdigit():
            raise MalformedMessage(f'frame of wire format {data[:2]!r}, this process reads '
                                   f'{MAGIC!r} (a process of another version?)', sender=sender)
        raise MalformedMessage('not a frame of this wire format')
    if len(data) < HEADER_LENGTH or sender is None or len(sender) != NODE_LENGTH:
        raise MalformedMessage('frame header cut short or unreadable')
    incarnation, seq = _NUMBERS.unpack_from(data, len(MAGIC) + NODE_LENGTH)
    return Frame(sender, incarnation, seq, data[HEADER_LENGTH:])


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(',', ':')).encode('utf-8')


def decode(payload: bytes) -> Message:
    """The checked message a payload carries; raises ``MalformedMessage``."""
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):   # UnicodeDecodeError included
        raise MalformedMessage('payload is not JSON') from None
    if not isinstance(message, dict):
        raise MalformedMessage('payload is not a JSON object')
    kind = message.get('t')
    fields = KINDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        shown = kind[:20] if isinstance(kind, str) else None   # never a sender's screenful
        raise MalformedMessage(f'unknown message type {str(kind)[:20]!r}', kind=shown)
    required, optional = fields
    for name in required + optional:
        if name not in message:
            if name in required:
                raise MalformedMessage(f'{name!r} missing', kind=kind)
            continue
        try:
            message[name] = _FIELDS[name](message[name])
        except ValueError as exc:
            raise MalformedMessage(f'{name!r}: {exc}', kind=kind) from None
    problem = _CHECKS[kind](message) if kind in _CHECKS else None
    if problem is not None:
        raise MalformedMessage(problem, kind=kind)
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


def _packets(items: Any) -> list[Packet]:
    if not isinstance(items, list):
        raise ValueError('expected a list of packets')
    packets = []
    for item in items:
        if not isinstance(item, list) or not 2 <= len(item) <= 3:
            raise ValueError('packet: expected [type, data(, 1)]')
        number, data = item[0], item[1]
        if type(number) is not int or not PacketType.OPEN <= number <= PacketType.NOOP:
            raise ValueError('packet type: expected 0-6')
        kind = PacketType(number)
        if len(item) == 3:
            if item[2] != 1 or kind is not PacketType.MESSAGE or not isinstance(data, str):
                raise ValueError('binary packet: expected [4, base64, 1]')
            try:
                data = base64.b64decode(data, validate=True)
            except binascii.Error:
                raise ValueError('binary packet: invalid base64') from None
        elif data is not None and not isinstance(data, str):
            raise ValueError('packet data: expected text')
        elif data is not None and not data.isascii():
            try:
                data.encode('utf-8')
            except UnicodeEncodeError:   # lone surrogates: no client could be sent it
                raise ValueError('packet data: text without a UTF-8 form') from None
        packets.append(Packet(kind, data))
    return packets


def _number(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError('expected a number')
    return value


def _sid(value: Any) -> str:
    if not isinstance(value, str) or not has_shape(value):
        raise ValueError('expected a sid')
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError('expected text')
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError('expected true or false')
    return value


def _reason(value: Any) -> Reason:
    try:
        return Reason(value)
    except ValueError:
        raise ValueError('expected a reason') from None   # not the sender's text: the log's


def _status(value: Any) -> int:
    return int(HTTPStatus(_number(value)))


def _anything(value: Any) -> Any:
    return value


_FIELDS = {'r': _number, 's': _sid, 'relay': _number, 'p': _packets, 'e': _text,
           'why': _reason, 'ok': _flag, 'status': _status, 'code': _number,
           'message': _anything, 'busy': _flag}

#: kind -> (fields it must have, fields it may have)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    kind: (tuple(required.split()), tuple(optional.split()))
    for kind, required, optional in (
        ('begin', 'r s', ''),
        ('post', 'r s p', 'e'),
        ('get', 'r s', ''),
        ('cancel', 'r', 's'),
        ('return', 's p', ''),
        ('send', 's p', ''),
        ('disconnect', 's', ''),
        ('close', 's why', ''),
        ('reply', 'r ok', 's p busy status code message'),
        ('ack', 'r', ''),
        ('ws', 'r s relay', ''),
        ('pause', 's relay', ''),
        ('resume', 's relay', ''),
        ('upgrade', 'r s relay', ''),
        ('in', 's relay p', ''),
        ('bad', 's relay', 'e'),
        ('gone', 's relay why', ''),
        ('out', 's relay p', ''),
        ('end', 's relay', ''),
    )
}


def _check_reply(message: Message) -> str | None:
    if not message['ok'] and not ('status' in message and 'code' in message):
        return 'a refusal without status and code'
    if 'p' in message and 's' not in message:
        return 'packets without a sid'
    return None


def _check_send(message: Message) -> str | None:
    for packet in message['p']:
        if packet.type is not PacketType.MESSAGE or packet.data is None:
            return 'only messages with data are sent'
    return None


#: what a kind's fields must satisfy together
_CHECKS = {'reply': _check_reply, 'send': _check_send}


def carries_data(packets: list[Packet]) -> bool:
    return any(packet.type is not PacketType.NOOP for packet in packets)


def refusal(rid: int, error: RequestError) -> Message:
    """The answer that refuses a request as ``error`` says."""
    return {'t': 'reply', 'r': rid, 'ok': False, 'status': int(error.status),
            'code': error.code, 'message': error.message}
