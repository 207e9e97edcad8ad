"""The packet trace: one DEBUG line per packet, received or sent.

On with ``Server(logger=True)`` or a logger (``Options.trace``); the places
that see packets test that one attribute and call nothing when it is off,
so a server without a logger pays no more than that test per packet.

A line reads ``<sid> received MESSAGE over polling: 'hello'``. Text data is
shown by its ``repr``, so that a client's newlines cannot forge log lines,
and cut to ``SHOWN`` characters with the whole length after it; binary data
is shown as its length only. "sending" is said when a packet is queued for
the client, over the transport that carries the session then (a packet
queued just before an upgrade may go out over the new one).
"""

from __future__ import annotations

import logging

from .packets import Packet

logger = logging.getLogger(__name__)

#: characters of text data a line shows
SHOWN = 200


def received(sid: str, transport: str, packet: Packet) -> None:
    _line('received', sid, transport, packet)


def sending(sid: str, transport: str, packet: Packet) -> None:
    _line('sending', sid, transport, packet)


def _line(direction: str, sid: str, transport: str, packet: Packet) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug('%s %s %s over %s%s', sid, direction, packet.type.name, transport,
                     _data(packet.data))


def _data(data: str | bytes | None) -> str:
    if not data:
        return ''
    if isinstance(data, bytes):
        return f': <binary, {len(data)} bytes>'
    if len(data) <= SHOWN:
        return f': {data!r}'
    return f': {data[:SHOWN]!r}... ({len(data)} characters)'
