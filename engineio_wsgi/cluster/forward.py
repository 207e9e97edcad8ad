"""Serving a polling request for a session another process owns (see link.py).

A POST takes the owner's POST slot (``begin``), its body is read and decoded
here (bad input is refused before it reaches Redis) and the owner applies
its packets as a local POST's. A GET takes the owner's read slot and answers
with what the owner drains; a drain whose client has left goes back to the
owner's queue. WebSocket requests are relayed (relay.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import polling_transport as polling
from ..errors import BadRequest, UnknownSid
from ..packets import DecodeError, Packet, PacketType, decode_payload
from ..reasons import Reason
from ..response import respond
from . import relay, wire

if TYPE_CHECKING:
    from ..request import Request
    from ..response import Headers, StartResponse
    from .contract import Link

NOOP = Packet(PacketType.NOOP)


def serve(link: Link, request: Request, start_response: StartResponse, headers: Headers,
          owner: str) -> Iterable[bytes]:
    """Answer a request for a session of ``owner``; raises ``RequestError``."""
    if request.transport == 'websocket':
        request.require_upgrade()
        return relay.serve(link, request, start_response, owner)
    if request.method == 'GET':
        body = _get(link, request, owner, headers)
    elif request.method == 'POST':
        body = _post(link, request, owner, headers)
    else:
        raise BadRequest(f'method {request.method} on a session')
    return respond(start_response, 200, headers, body)


def _post(link: Link, request: Request, owner: str, headers: Headers) -> bytes:
    sid = request.sid
    assert sid is not None
    remote = _RemoteSession(link, owner, sid)
    if request.content_type == 'application/octet-stream':
        remote.close(Reason.PARSE_ERROR)
        raise BadRequest('binary POST bodies are not part of Engine.IO v4')
    # the owner's POST slot, held while the body is read here
    link.call(owner, {'t': 'begin', 's': sid})
    body = polling.read_body(request, link.options, remote)  # type: ignore[arg-type]
    error: DecodeError | None = None
    try:
        packets = decode_payload(body)
    except DecodeError as exc:
        packets, error = exc.packets, exc
    message: wire.Message = {'t': 'post', 's': sid, 'p': wire.pack(packets)}
    if error is not None:
        message['e'] = str(error)
    link.call(owner, message)
    headers.append(('Content-Type', 'text/html'))
    return b'ok'


def _get(link: Link, request: Request, owner: str, headers: Headers) -> bytes:
    sid = request.sid
    assert sid is not None
    adapter = request.adapter
    peer_gone = None if adapter.sock is None else adapter.peer_gone
    answer = link.call(owner, {'t': 'get', 's': sid}, peer_gone)
    packets = answer.get('p')
    if packets is None:
        raise UnknownSid('the owner answered a long-poll without packets')
    if peer_gone is not None and wire.carries_data(packets) and peer_gone():
        # nobody would read them: back to the owner's queue
        link.publish_quietly(owner, {'t': 'return', 's': sid, 'p': wire.pack(packets)})
        packets = [NOOP]
    return polling.payload_body(packets, request, link.options, headers)


class _RemoteSession:
    """What reading a POST body for another node's session needs of it."""

    def __init__(self, link: Link, owner: str, sid: str) -> None:
        self.backend = link.backend()
        self._link = link
        self._owner = owner
        self._sid = sid

    def close(self, reason: Reason) -> None:
        self._link.close_remote(self._owner, self._sid, reason)
