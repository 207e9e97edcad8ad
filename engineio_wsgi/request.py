"""From a WSGI environ to a validated Engine.IO request (checks 1-4 of PROTOCOL.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .errors import BadRequest, UnknownTransport, UnsupportedProtocolVersion
from .options import TRANSPORTS
from .rfc6455 import asks_for_upgrade

#: query parameters that must not appear twice
_SINGLE = frozenset({'EIO', 'transport', 'sid'})
#: a serialized origin (scheme://host[:port]) or "null"
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[A-Za-z0-9.\-_~%!$&'()*+,;=:\[\]]+|null")


@dataclass(slots=True)
class Request:
    environ: dict[str, Any]
    method: str
    transport: str
    sid: str | None
    b64: bool

    def require_upgrade(self) -> None:
        """``transport=websocket`` must come with a WebSocket upgrade (check 9)."""
        if not asks_for_upgrade(self.environ):
            raise BadRequest('transport=websocket without a WebSocket upgrade')


def client_address(environ: dict[str, Any], trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: ``REMOTE_ADDR``, or when that is a trusted proxy,
    the nearest address in ``X-Forwarded-For`` that is not one."""
    address = environ.get('REMOTE_ADDR') or ''
    if not trusted_proxies or address not in trusted_proxies:
        return address
    forwarded = environ.get('HTTP_X_FORWARDED_FOR', '')
    for hop in reversed(forwarded.split(',')):
        hop = hop.strip()
        if hop and hop not in trusted_proxies:
            return hop[:64]
    return address


def parse_query(query: str) -> dict[str, str]:
    """The parameters this library reads; raises on a repeated one."""
    found: dict[str, str] = {}
    for part in query.split('&'):
        name, _, value = part.partition('=')
        if name in _SINGLE or name == 'b64':
            if name in found and name != 'b64':
                raise BadRequest(f'query parameter {name} given more than once')
            found[name] = unquote(value) if '%' in value else value
    return found


def parse_request(environ: dict[str, Any], enabled: tuple[str, ...]) -> Request:
    query = parse_query(environ.get('QUERY_STRING', ''))
    if query.get('EIO') != '4':
        raise UnsupportedProtocolVersion('EIO must be 4')
    transport = query.get('transport')
    if transport not in TRANSPORTS or transport not in enabled:
        raise UnknownTransport('transport missing, unknown or not enabled')
    origin = environ.get('HTTP_ORIGIN')
    if origin is not None and not _ORIGIN.fullmatch(origin):
        raise BadRequest('Origin header has invalid characters')
    b64 = query.get('b64', '')
    return Request(environ, environ.get('REQUEST_METHOD', 'GET').upper(), transport,
                   query.get('sid'), b64 not in ('', '0', 'false'))
