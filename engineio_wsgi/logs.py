"""Where the library's log records go.

Every module logs to a child of the ``engineio_wsgi`` logger and adds no
handler (but the one below). ``Server(logger=<logging.Logger>)`` hangs that whole hierarchy under
the given logger, so that its level, filters, handlers and propagation apply
to the library's records, as python-engineio does with the logger it is given.
This is process-wide: the last server created with a logger decides.
``Server(logger=True)`` sets the hierarchy to INFO, and the packet trace's
logger (trace.py) to DEBUG unless a level was set for it: python-engineio's
``logger=True`` shows each packet too.

Under gunicorn, when nothing would show the library's records (no handler on
the way to the root: the application configured no logging, and gunicorn
sets up only its own loggers), ``route_to_server_log`` sends the hierarchy's
records to gunicorn's error log, at WARNING unless a level was set, each line
starting ``engineio_wsgi:``: warnings then carry gunicorn's format and say
whose they are, instead of Python's bare last-resort line. That one handler,
which forwards to gunicorn's own, is the only one the library ever adds.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

PACKAGE = 'engineio_wsgi'
#: the packet trace's logger (trace.py)
TRACE = f'{PACKAGE}.trace'
#: the server's own log that records go to when nothing else shows them
SERVER_LOG = 'gunicorn.error'
_routed = False


class _ToServerLog(logging.Handler):
    """Hands each record to gunicorn's error log, its message prefixed."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            forwarded = logging.makeLogRecord(record.__dict__)
            forwarded.msg = f'{PACKAGE}: {record.getMessage()}'
            forwarded.args = None
            self.target.handle(forwarded)
        except Exception:   # a bad format string must not fail the caller, as in logging's own
            self.handleError(record)


_forwarder: _ToServerLog | None = None


def configure(logger: bool | logging.Logger) -> logging.Logger:
    """Apply a ``Server(logger=...)`` value; returns the logger records go to."""
    package = logging.getLogger(PACKAGE)
    if logger is True:
        package.setLevel(logging.INFO)
        # the packet trace's lines are DEBUG: shown too, unless a level was set
        trace = logging.getLogger(TRACE)
        if trace.level == logging.NOTSET:
            trace.setLevel(logging.DEBUG)
    elif isinstance(logger, logging.Logger):
        use_logger(logger)
        return logger
    return package


def use_logger(target: logging.Logger | None) -> None:
    """Send the library's records through ``target`` (None: back to the root)."""
    package = logging.getLogger(PACKAGE)
    if target is None or target is package:
        parent: logging.Logger = logging.getLogger()
    else:
        walk: logging.Logger | None = target
        while walk is not None:
            if walk is package:
                raise ValueError(f'logger {target.name!r} is inside the {PACKAGE} hierarchy '
                                 f'itself; pass a logger of the application')
            walk = walk.parent
        parent = target
    _unroute(package)
    if package.parent is not parent:
        package.parent = parent
        # loggers cache whether a level is enabled; setLevel clears every cache
        package.setLevel(package.level)


def _server_log() -> logging.Logger | None:
    """gunicorn's error log when it is set up in this process, else None."""
    if 'gunicorn' not in sys.modules:
        return None
    server_log = logging.getLogger(SERVER_LOG)
    return server_log if server_log.handlers else None


def route_to_server_log() -> None:
    """Called at the first request, and before the cluster starts its inbox:
    if nothing shows the library's records, send them to gunicorn's error log
    (see the module's docstring)."""
    global _routed, _forwarder
    package = logging.getLogger(PACKAGE)
    server_log = _server_log()
    if _routed or server_log is None or package.hasHandlers():
        return
    _routed = True
    _forwarder = _ToServerLog(server_log)
    package.addHandler(_forwarder)
    package.propagate = False   # as gunicorn's error log does not propagate either
    if package.level == logging.NOTSET:
        package.setLevel(logging.WARNING)


def _unroute(package: logging.Logger) -> None:
    global _routed, _forwarder
    _routed = False
    if _forwarder is not None:
        package.removeHandler(_forwarder)
        package.propagate = True
        _forwarder = None


def visible(logger: logging.Logger) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Where lines that people must see go (start-up lines, configuration
    warnings): ``logger``, or, when nothing would show its lines (no handler
    anywhere, as under gunicorn, which sets up only its own loggers),
    gunicorn's error log, where people look, also at INFO."""
    server_log = _server_log()
    if server_log is None or (logger.hasHandlers() and not _routed):
        return logger
    return _Prefixed(server_log, {})


class _Prefixed(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f'engineio_wsgi: {msg}', kwargs
