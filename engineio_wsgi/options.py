"""Validated, frozen server options.

``Options.from_kwargs`` accepts every keyword of python-engineio's ``Server``
plus this library's own, and raises ``TypeError`` for any other name, so that a
typo is caught at start-up instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

TRANSPORTS = ('polling', 'websocket')
ASYNC_MODES = ('threading', 'gevent')

#: ``cors_allowed_origins``: None (same origin), '*', a list, or a callable
OriginPolicy = None | str | Sequence[str] | Callable[..., bool]


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    async_mode: str | None = None
    ping_interval: float = 25.0
    #: extra seconds granted on top of ping_timeout (python-engineio's
    #: ``ping_interval=(interval, grace)``); not advertised to clients
    ping_grace: float = 0.0
    ping_timeout: float = 20.0
    upgrade_timeout: float = 10.0
    max_http_buffer_size: int = 1_000_000
    allow_upgrades: bool = True
    transports: tuple[str, ...] = TRANSPORTS
    cors_allowed_origins: OriginPolicy = None
    cors_credentials: bool = True
    cookie: dict[str, Any] | None = None
    http_compression: bool = True
    compression_threshold: int = 1024
    max_packets_per_poll: int = 16
    #: packets waiting to be sent to one client; past it: "send buffer full"
    max_queued_packets: int = 10_000
    #: seconds a POST body may take to arrive before it is dropped
    http_body_timeout: float = 10.0
    #: permessage-deflate on WebSocket connections
    websocket_compression: bool = False
    #: seconds ``shutdown()`` waits for clients to receive their close packet
    shutdown_timeout: float = 5.0
    #: True: message handlers run off the I/O path (in order per session)
    async_handlers: bool = True
    #: most sessions open at once (None: no limit); past it handshakes get 503
    max_sessions: int | None = None
    #: most sessions open at once per client address; past it handshakes get 429
    max_sessions_per_client: int | None = None
    #: ``(messages, seconds)``: most messages a session may send in that window;
    #: past it the session closes (a POST gets 429). None: no limit
    message_rate_limit: tuple[int, float] | None = None
    #: addresses of reverse proxies whose ``X-Forwarded-For`` is believed
    trusted_proxies: tuple[str, ...] = ()
    #: True: the library logs at INFO; a Logger: the library's records go to it
    logger: bool | logging.Logger = False
    #: threading mode: most threads running message handlers and WebSocket
    #: writes at once, for all sessions together
    max_worker_threads: int = 64
    #: several processes share sessions over Redis: a redis://, rediss:// or
    #: unix:// URL, or a redis-py client object (see engineio_wsgi.cluster)
    cluster: Any = None
    #: the packet trace (trace.py) is on: a logger was given; not a keyword
    #: of its own, and a field (not a property) because packets test it
    trace: bool = dataclasses.field(default=False, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'trace', self.logger is not False)

    @property
    def ping_interval_ms(self) -> int:
        return round(self.ping_interval * 1000)

    @property
    def ping_timeout_ms(self) -> int:
        return round(self.ping_timeout * 1000)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Options:
        values: dict[str, Any] = {}
        for name in _ACCEPTED_ONLY:
            kwargs.pop(name, None)
        if 'logger' in kwargs:
            logger = kwargs.pop('logger')
            if not isinstance(logger, (bool, logging.Logger)):
                raise TypeError(f'logger must be True, False or a logging.Logger, '
                                f'not {type(logger).__name__}')
            values['logger'] = logger
        if 'ping_interval' in kwargs:
            ping_interval = kwargs.pop('ping_interval')
            if isinstance(ping_interval, (tuple, list)):
                ping_interval, values['ping_grace'] = ping_interval
            values['ping_interval'] = ping_interval
        if 'transports' in kwargs:
            transports = kwargs.pop('transports')
            if transports is None:
                transports = TRANSPORTS
            elif isinstance(transports, str):
                transports = (transports,)
            values['transports'] = tuple(transports)
        if 'cookie' in kwargs:
            values['cookie'] = _cookie_options(kwargs.pop('cookie'))
        if 'trusted_proxies' in kwargs:
            proxies = kwargs.pop('trusted_proxies') or ()
            values['trusted_proxies'] = (proxies,) if isinstance(proxies, str) else tuple(proxies)
        if kwargs.get('message_rate_limit') is not None:
            count, seconds = kwargs.pop('message_rate_limit')
            values['message_rate_limit'] = (count, float(seconds))
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(_unknown_keywords_message(unknown, known))
        values.update(kwargs)
        options = cls(**values)
        options.validate()
        return options

    def validate(self) -> None:
        if self.async_mode is not None and self.async_mode not in ASYNC_MODES:
            raise ValueError(
                f'async_mode must be None, "threading" or "gevent", not {self.async_mode!r}')
        for name in ('ping_interval', 'ping_timeout', 'upgrade_timeout',
                     'http_body_timeout', 'shutdown_timeout'):
            _positive(name, getattr(self, name))
        for name in ('max_http_buffer_size', 'max_packets_per_poll', 'max_queued_packets',
                     'max_worker_threads'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f'{name} must be a positive integer, not {value!r}')
        for name in ('max_sessions', 'max_sessions_per_client'):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f'{name} must be None or a positive integer, not {value!r}')
        if self.message_rate_limit is not None:
            count, seconds = self.message_rate_limit
            if not isinstance(count, int) or count <= 0:
                raise ValueError('message_rate_limit must be (messages > 0, seconds > 0)')
            _positive('message_rate_limit seconds', seconds)
        if self.ping_grace < 0:
            raise ValueError('the ping_interval grace period must not be negative')
        if self.compression_threshold < 0:
            raise ValueError('compression_threshold must not be negative')
        if not self.transports or any(t not in TRANSPORTS for t in self.transports):
            raise ValueError(
                f'transports must be a non-empty list of {TRANSPORTS}, not {self.transports!r}')
        policy = self.cors_allowed_origins
        if not (policy is None or isinstance(policy, str) or callable(policy)
                or all(isinstance(o, str) for o in policy)):
            raise ValueError(
                'cors_allowed_origins must be None, "*", a list of origins or a callable')


#: python-engineio keywords that have no effect here (see the README's options table)
_ACCEPTED_ONLY = (
    'json',             # message data is never JSON-decoded, so no JSON module is needed
    'monitor_clients',  # each session has its own heartbeat; there is no sweeping task
)


def _unknown_keywords_message(unknown: list[str], known: set[str]) -> str:
    """The TypeError text, with the closest valid name for each typo that has one."""
    valid = sorted(known | {'logger', *_ACCEPTED_ONLY})
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        parts.append(f'{name!r} (did you mean {close[0]!r}?)' if close else repr(name))
    if len(parts) == 1:
        return f'Server() got an unexpected keyword argument {parts[0]}'
    return f'Server() got unexpected keyword arguments {", ".join(parts)}'


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f'{name} must be a number of seconds above zero, not {value!r}')


def _cookie_options(cookie: object) -> dict[str, Any] | None:
    if cookie is None or cookie is False:
        return None
    if isinstance(cookie, str):
        cookie = {'name': cookie}
    if not isinstance(cookie, dict):
        raise ValueError('cookie must be None, a cookie name or a dict of cookie attributes')
    cookie = {'name': 'io', **cookie}
    if not isinstance(cookie['name'], str) or not _COOKIE_TOKEN.fullmatch(cookie['name']):
        raise ValueError(f'cookie name {cookie["name"]!r} is not a valid cookie name')
    for key, value in cookie.items():
        if not isinstance(key, str) or not _COOKIE_TOKEN.fullmatch(key):
            raise ValueError(f'cookie attribute {key!r} is not a valid token')
        # callables are called, and their result checked, at each handshake
        if not callable(value) and not isinstance(value, bool) and value is not None \
                and _breaks_header(str(value)):
            raise ValueError(f'cookie attribute {key} has an invalid character: {value!r}')
    return cookie


#: RFC 6265 cookie-name, and any attribute name (an RFC 7230 token)
_COOKIE_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _breaks_header(text: str) -> bool:
    return any(c in text for c in ';\r\n')
