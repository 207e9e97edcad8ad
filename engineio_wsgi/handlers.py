"""Calling the application: its connect, message and disconnect handlers.

The only place that calls the application's event handlers. A handler's
exception is logged and never reaches the transport that carried the event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .callables import takes_args
from .errors import ConnectionRefusedError
from .session import Session

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]
EVENTS = ('connect', 'message', 'disconnect')
#: the refusal message when the connect handler gives none (python-engineio's)
REFUSED = 'Unauthorized'


class AppHandlers:
    """The application's handlers, and the sessions it may still read.

    ``reachable`` holds a session from before the connect handler until the
    disconnect handler returned, whatever the session's state, so that
    ``get_session`` and ``transport`` work inside the disconnect handler.
    """

    def __init__(self) -> None:
        #: event name -> handler (python-engineio's ``Server.handlers``)
        self.by_event: dict[str, Handler] = {}
        self.disconnect_takes_reason = True
        self.reachable: dict[str, Session] = {}

    def register(self, event: str, fn: Handler) -> None:
        if event not in EVENTS:
            raise ValueError(f'unknown event {event!r}; expected one of {EVENTS}')
        self.by_event[event] = fn
        if event == 'disconnect':
            self.disconnect_takes_reason = takes_args(fn, 2)

    def connect(self, sid: str, environ: dict[str, Any]) -> Any:
        """None when accepted, else the refusal message for the client.

        As in python-engineio: None or True accepts, any other value refuses
        and becomes the message (empty values and exceptions give the default).
        """
        handler = self.by_event.get('connect')
        if handler is None:
            return None
        try:
            result = handler(sid, environ)
        except ConnectionRefusedError as exc:
            return _refusal_message(sid, exc.reason)
        except Exception:
            logger.exception('%s connect handler failed; refusing the connection', sid)
            return REFUSED
        if result is None or result is True:
            return None
        if isinstance(result, tuple) and result and result[0] is False:
            return _refusal_message(sid, result[1] if len(result) > 1 else None)
        return _refusal_message(sid, result)

    def message(self, session: Session, data: str | bytes) -> None:
        handler = self.by_event.get('message')
        if handler is None:
            return
        try:
            handler(session.sid, data)
        except Exception:
            logger.exception('%s message handler failed', session.sid)

    def disconnect(self, session: Session, reason: str) -> None:
        handler = self.by_event.get('disconnect')
        try:
            if handler is None:
                return
            if self.disconnect_takes_reason:
                handler(session.sid, reason)
            else:
                handler(session.sid)
        except Exception:
            logger.exception('%s disconnect handler failed', session.sid)
        finally:
            # the session's data and transport are readable until now, for every reason
            self.reachable.pop(session.sid, None)

    def readable(self, sid: str) -> Session:
        """The session the application may read; ``KeyError`` otherwise."""
        session = self.reachable.get(sid)
        if session is None:
            raise KeyError(sid)
        return session


def _refusal_message(sid: str, value: Any) -> Any:
    """What a refused client is told: the application's value, or the default."""
    if not value:
        return REFUSED
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        logger.warning('%s connect handler refused with a %s, which JSON cannot carry; '
                       'sending the default message', sid, type(value).__name__)
        return REFUSED
    return value
