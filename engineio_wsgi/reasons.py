"""Why a session ends: the values the application's disconnect handler receives."""

from __future__ import annotations

import enum


class PlainStrEnum(str, enum.Enum):
    """A ``str`` Enum whose members print as their plain string value
    (as Python 3.11's ``StrEnum`` does, also before it)."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(self, spec)


class Reason(PlainStrEnum):
    """Why a session ended, as reported to the ``disconnect`` handler.

    Each member is a ``str`` equal to python-engineio's string for it, and
    prints as that string.
    """

    CLIENT_DISCONNECT = 'client disconnect'
    SERVER_DISCONNECT = 'server disconnect'
    PING_TIMEOUT = 'ping timeout'
    TRANSPORT_CLOSE = 'transport close'
    TRANSPORT_ERROR = 'transport error'
    PARSE_ERROR = 'parse error'
    PAYLOAD_TOO_LARGE = 'payload too large'
    SEND_BUFFER_FULL = 'send buffer full'
    SERVER_SHUTDOWN = 'server shutdown'


#: reasons after which a polling client is owed its close packet even if it has
#: no GET waiting: the session lingers until its next GET fetches it
LINGERING_REASONS = frozenset({Reason.SERVER_DISCONNECT, Reason.SERVER_SHUTDOWN})
