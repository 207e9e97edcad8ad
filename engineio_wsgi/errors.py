"""Exceptions.

Errors that end an HTTP request carry the HTTP status and the Engine.IO error
code to answer with, so that the request pipeline renders every refusal in one
place (see ``response.render_error``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class EngineIOError(Exception):
    """Base class of every exception raised by engineio_wsgi."""


class ConnectionRefusedError(EngineIOError):  # noqa: A001 - python-engineio name
    """Raise from a ``connect`` handler to refuse the connection.

    The first argument, when given, is the message sent to the client: a
    string, or data JSON can carry (a dict, a list, a number).
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.reason: Any = args[0] if args else None


class RequestError(EngineIOError):
    """A request that is answered with an HTTP error and a JSON body."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    code: int = 3
    #: the body's ``message``: ours, or the value a connect handler refused with
    message: Any = 'Bad request'

    def __init__(self, detail: str | None = None, *, message: Any = None) -> None:
        #: what the log line says; never sent to the client
        self.detail = detail or self.message
        if message is not None:
            self.message = message
        super().__init__(self.detail)


class UnknownTransport(RequestError):
    code = 0
    message = 'Transport unknown'


class UnknownSid(RequestError):
    code = 1
    message = 'Session ID unknown'


class BadHandshakeMethod(RequestError):
    code = 2
    message = 'Bad handshake method'


class BadRequest(RequestError):
    code = 3
    message = 'Bad request'


class Forbidden(RequestError):
    status = HTTPStatus.FORBIDDEN
    code = 4
    message = 'Forbidden'


class UnsupportedProtocolVersion(RequestError):
    code = 5
    message = 'Unsupported protocol version'


class PayloadTooLarge(RequestError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = 3
    message = 'Payload too large'


class ServiceUnavailable(RequestError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = 3
    message = 'Server unavailable'


class ServerMisconfigured(RequestError):
    """The server cannot serve Engine.IO as configured (logged with the fix)."""
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = 3
    message = 'Server misconfigured (see its log)'


class TooManyRequests(RequestError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    code = 3
    message = 'Too many requests'
