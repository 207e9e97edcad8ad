"""Calling the application: its connect, message, disconnect and
connection_error handlers.

The only place that calls the application's event handlers. A handler's
exception is logged and never reaches the transport that carried the event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .callables import takes_args
from .errors import ConnectionRefusedError
from .session import Session

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]
EVENTS = ('connect', 'message', 'disconnect', 'connection_error')
#: the refusal message when the connect handler gives none (python-engineio's)
REFUSED = 'Unauthorized'


class AppHandlers:
    """The application's handlers, and the sessions it may still read.

    ``reachable`` holds a session from before the connect handler until the
    disconnect handler returned, whatever the session's state, so that
    ``get_session`` and ``transport`` work inside the disconnect handler.

    While the application ends a session itself (``holding``), the engine's
    disconnect event for it waits: a client that leaves the moment it reads
    the server's goodbye ends the session on the reader's thread, and the
    application's own disconnect handler, run after that goodbye was sent,
    must still find the session (python-socketio's ``Server.disconnect``).
    """

    def __init__(self) -> None:
        #: event name -> handler (python-engineio's ``Server.handlers``)
        self.by_event: dict[str, Handler] = {}
        self.disconnect_takes_reason = True
        self.reachable: dict[str, Session] = {}
        #: sid -> [holders, the disconnect event that waits for them]
        self._held: dict[str, list[Any]] = {}
        # held only around the table: never while calling the application
        self._held_lock = threading.Lock()

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

    def connection_error(self, environ: dict[str, Any], code: int, message: Any) -> None:
        """A request was refused with ``code`` and ``message`` (its error
        body's); called before the answer goes out, which it never changes."""
        handler = self.by_event.get('connection_error')
        if handler is None:
            return
        try:
            handler(environ, code, message)
        except Exception:
            logger.exception('connection_error handler failed')

    def message(self, session: Session, data: str | bytes) -> None:
        handler = self.by_event.get('message')
        if handler is None:
            return
        try:
            handler(session.sid, data)
        except Exception:
            logger.exception('%s message handler failed', session.sid)

    def disconnect(self, session: Session, reason: str) -> None:
        """The session ended: report it, unless the application is ending it
        itself right now (``holding``): then once it is done."""
        if self._held:
            with self._held_lock:
                held = self._held.get(session.sid)
                if held is not None:
                    held[1] = (session, reason)
                    return
        self._report_disconnect(session, reason)

    @contextlib.contextmanager
    def holding(self, sid: str) -> Iterator[None]:
        """The application ends session ``sid`` in this block: the engine's
        disconnect event for it, if it comes meanwhile, runs when the block
        is left (on the thread leaving it)."""
        with self._held_lock:
            held = self._held.setdefault(sid, [0, None])
            held[0] += 1
        try:
            yield
        finally:
            with self._held_lock:
                held[0] -= 1
                waiting = None
                if held[0] == 0:
                    del self._held[sid]
                    waiting = held[1]
            if waiting is not None:
                self._report_disconnect(*waiting)

    def _report_disconnect(self, session: Session, reason: str) -> None:
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
