"""The echo app (tests/apps/echo.py) inside the usual WSGI wrappers, for the
test that the end of a WebSocket does not look like an application error.

From the inside out:

- a recording wrapper, as error reporters are written: it notes on stderr
  (``WRAPPER saw <exception> in <where>``) any exception out of the call,
  the iteration or ``close()``, and re-raises it;
- werkzeug's debugger (``DebuggedApplication``, what ``flask run --debug``
  wraps an application in), which turns an exception into a 500 and prints
  its traceback; it is also a generator-style middleware.

Configured by the same environment variables as tests/apps/echo.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.debug import DebuggedApplication

from tests.apps.echo import app as echo_app

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _note(exc: BaseException, where: str) -> None:
    sys.stderr.write(f'WRAPPER saw {type(exc).__name__} in {where}\n')
    sys.stderr.flush()


class _Recorded:
    def __init__(self, result: Iterable[bytes]) -> None:
        self._result = result

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except Exception as exc:
            _note(exc, 'the iteration')
            raise

    def close(self) -> None:
        close = getattr(self._result, 'close', None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                _note(exc, 'close()')
                raise


def recording(inner: WSGIApplication) -> WSGIApplication:
    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            result = inner(environ, start_response)
        except Exception as exc:
            _note(exc, 'the call')
            raise
        return _Recorded(result)
    return wrapper


app = DebuggedApplication(recording(echo_app), evalex=False)
