"""Which origins may talk to the server, and the CORS headers they get."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .callables import takes_args
from .options import OriginPolicy
from .request import Request, valid_origin

_DEFAULT_PORTS = {'http': '80', 'https': '443', 'ws': '80', 'wss': '443'}
#: a list of HTTP header names (RFC 9110 tokens), as Access-Control-Request-Headers has
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_NAMES = re.compile(rf'[ \t]*{_TOKEN}(?:[ \t]*,[ \t]*{_TOKEN})*[ \t]*')


class CorsPolicy:
    def __init__(self, allowed: OriginPolicy, credentials: bool) -> None:
        self.credentials = credentials
        #: ``[]`` turns all checking and all CORS headers off
        self.disabled = isinstance(allowed, (list, tuple)) and not allowed
        # '*' alone or anywhere in a list allows any origin (python-engineio's rule)
        self._any = allowed == '*' or (
            isinstance(allowed, (list, tuple, set, frozenset)) and '*' in allowed)
        self._same_origin = allowed is None
        self._call: Callable[[str, dict[str, Any]], bool] | None = None
        self._allowed: frozenset[str] = frozenset()
        if callable(allowed):
            self._call = _adapt(allowed)
        elif isinstance(allowed, str) and not self._any:
            self._allowed = frozenset({_normalize(allowed)})
        elif isinstance(allowed, (list, tuple, set, frozenset)):
            self._allowed = frozenset(_normalize(o) for o in allowed)

    def allows(self, request: Request) -> bool:
        """True for a request without Origin or with an allowed one; an Origin
        that check 4 refuses is never allowed (nor shown to a callable), so it
        never gets CORS headers echoing it."""
        origin = request.origin
        if origin is None:
            return True
        if not valid_origin(origin):
            return False
        if self.disabled or self._any:
            return True
        if self._same_origin:
            return _normalize(origin) == _normalize(request.own_origin)
        if self._call is not None:
            # the application's check gets the WSGI environ (public API)
            return bool(self._call(origin, request.environ))
        return _normalize(origin) in self._allowed

    def headers(self, request: Request, preflight: bool = False) -> list[tuple[str, str]]:
        """Headers for a response to an allowed request (none without Origin)."""
        origin = request.origin
        if origin is None or self.disabled:
            return []
        headers = [('Access-Control-Allow-Origin', origin), ('Vary', 'Origin')]
        if self.credentials:
            headers.append(('Access-Control-Allow-Credentials', 'true'))
        if preflight:
            headers.append(('Access-Control-Allow-Methods', 'GET, POST, OPTIONS'))
            requested = request.access_control_request_headers
            # header names only (tokens, comma-separated): anything else is not
            # echoed into a response header
            if requested and _HEADER_NAMES.fullmatch(requested):
                headers.append(('Access-Control-Allow-Headers', requested))
        return headers


def _normalize(origin: str) -> str:
    scheme, sep, rest = origin.lower().partition('://')
    if not sep:
        return origin.lower()
    host, colon, port = rest.rpartition(':')
    if colon and port == _DEFAULT_PORTS.get(scheme):
        return f'{scheme}://{host}'
    return f'{scheme}://{rest}'


def _adapt(check: Callable[..., bool]) -> Callable[[str, dict[str, Any]], bool]:
    """Accept ``check(origin)`` as well as ``check(origin, wsgi_env)``."""
    if takes_args(check, 2):
        return check
    return lambda origin, _: check(origin)
