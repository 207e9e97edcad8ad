"""From a WSGI environ to a validated Engine.IO request (checks 1-4 of PROTOCOL.md).

Each request is read from its environ here, once, into a :class:`Request`
(the HTTP fields the layers below use) and a
:class:`~engineio_wsgi.wsgi_servers.ServerAdapter` (what the server behind it
can do). Fields only some requests need are read when first asked for, so a
request costs no more than the fields it uses; the environ is never copied.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from .errors import BadRequest, UnknownTransport, UnsupportedProtocolVersion
from .options import TRANSPORTS
from .wsgi_servers import ServerAdapter

#: query parameters that must not appear twice
_SINGLE = frozenset({'EIO', 'transport', 'sid'})
#: a serialized origin (scheme://host[:port]) or "null"
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[A-Za-z0-9.\-_~%!$&'()*+,;=:\[\]]+|null")


def valid_origin(origin: str) -> bool:
    """Check 4 of PROTOCOL.md: a serialized origin (``scheme://host[:port]``) or
    ``null``. What passes is printable ASCII, so it can be echoed in a header."""
    return _ORIGIN.fullmatch(origin) is not None


def _header_tokens(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(',') if part.strip()]


class Request:
    """One HTTP request as the library reads it.

    ``environ`` is kept only to hand it, unchanged, to application callbacks
    that take it (the connect handler, a ``cors_allowed_origins`` callable).
    ``transport``, ``sid`` and ``b64`` are set by :func:`parse_request`.
    """

    __slots__ = ('environ', 'adapter', 'method', 'origin', 'transport', 'sid', 'b64')

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.adapter = ServerAdapter(environ)
        #: upper-cased; :attr:`raw_method` is the server's own
        self.method: str = environ.get('REQUEST_METHOD', 'GET').upper()
        self.origin: str | None = environ.get('HTTP_ORIGIN')
        self.transport: str = ''
        self.sid: str | None = None
        self.b64 = False

    # -- fields read on first use (each at most once per request in practice)

    def _get(self, key: str, default: str = '') -> str:
        return self.environ.get(key, default)

    @property
    def raw_method(self) -> str | None:
        """``REQUEST_METHOD`` exactly as the server gave it (None if missing)."""
        return self.environ.get('REQUEST_METHOD')

    @property
    def http_version(self) -> str:
        return str(self.environ.get('SERVER_PROTOCOL', 'HTTP/1.1')).upper()

    @property
    def path(self) -> str:
        return self.environ.get('PATH_INFO', '/') or '/'

    @property
    def query_string(self) -> str:
        return self._get('QUERY_STRING')

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-case, without parameters."""
        return self._get('CONTENT_TYPE').split(';')[0].strip().lower()

    @property
    def content_length(self) -> str:
        """``Content-Length`` as sent ('' when absent); the caller validates it."""
        return self.environ.get('CONTENT_LENGTH') or ''

    @property
    def chunked(self) -> bool:
        return 'chunked' in self._get('HTTP_TRANSFER_ENCODING').lower()

    @property
    def accept_encoding(self) -> str:
        return self._get('HTTP_ACCEPT_ENCODING')

    @property
    def access_control_request_headers(self) -> str | None:
        return self.environ.get('HTTP_ACCESS_CONTROL_REQUEST_HEADERS')

    @property
    def own_origin(self) -> str:
        """``scheme://host[:port]`` this request was sent to, as the client saw it
        (``X-Forwarded-Proto`` / ``X-Forwarded-Host`` first); not normalized."""
        env = self.environ
        scheme = (env.get('HTTP_X_FORWARDED_PROTO') or env.get('wsgi.url_scheme')
                  or 'http').split(',')[0].strip()
        host = env.get('HTTP_X_FORWARDED_HOST') or env.get('HTTP_HOST')
        if not host:
            host = f"{env.get('SERVER_NAME', '')}:{env.get('SERVER_PORT', '')}"
        return f'{scheme}://{host.split(",")[0].strip()}'

    # -- the WebSocket handshake's headers

    @property
    def websocket_key(self) -> str:
        return self._get('HTTP_SEC_WEBSOCKET_KEY').strip()

    @property
    def websocket_version(self) -> str:
        return self._get('HTTP_SEC_WEBSOCKET_VERSION').strip()

    @property
    def upgrade_ok(self) -> bool:
        """``Upgrade`` names exactly one protocol, websocket (as websockets reads it)."""
        return _header_tokens(self._get('HTTP_UPGRADE')) == ['websocket']

    @property
    def connection_ok(self) -> bool:
        """``Connection`` lists ``upgrade``: 'keep-alive, Upgrade' has it, 'notupgrade' not."""
        return 'upgrade' in _header_tokens(self._get('HTTP_CONNECTION'))

    @property
    def asks_for_upgrade(self) -> bool:
        """True when the request asks for a WebSocket (or the server upgraded it).

        The one reading of ``Upgrade`` and ``Connection`` for the whole library,
        the same as the WebSocket handshake applies.
        """
        if self.adapter.upgraded:   # gevent-websocket upgraded it already
            return True
        return self.upgrade_ok and self.connection_ok

    def headers(self) -> Iterator[tuple[str, str]]:
        """Every HTTP request header as ``(Name-In-Title-Case, value)``."""
        for key, value in self.environ.items():
            if key.startswith('HTTP_') and isinstance(value, str):
                yield key[5:].replace('_', '-').title(), value

    def client_address(self, trusted_proxies: tuple[str, ...]) -> str:
        """The client's address: ``REMOTE_ADDR``, or when that is a trusted proxy,
        the nearest address in ``X-Forwarded-For`` that is not one."""
        address = self.environ.get('REMOTE_ADDR') or ''
        if not trusted_proxies or address not in trusted_proxies:
            return address
        forwarded = self._get('HTTP_X_FORWARDED_FOR')
        for hop in reversed(forwarded.split(',')):
            hop = hop.strip()
            if hop and hop not in trusted_proxies:
                return hop[:64]
        return address

    def require_upgrade(self) -> None:
        """``transport=websocket`` must come with a WebSocket upgrade (check 9)."""
        if not self.asks_for_upgrade:
            raise BadRequest('transport=websocket without a WebSocket upgrade')


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


def parse_request(request: Request, enabled: tuple[str, ...]) -> Request:
    """Check the request's Engine.IO fields and fill them in; returns ``request``."""
    query = parse_query(request.query_string)
    if query.get('EIO') != '4':
        raise UnsupportedProtocolVersion('EIO must be 4')
    transport = query.get('transport')
    if transport not in TRANSPORTS or transport not in enabled:
        raise UnknownTransport('transport missing, unknown or not enabled')
    origin = request.origin
    if origin is not None and not valid_origin(origin):
        raise BadRequest('Origin header has invalid characters')
    b64 = query.get('b64', '')
    request.transport = transport
    request.sid = query.get('sid')
    request.b64 = b64 not in ('', '0', 'false')
    return request
