"""Where the library's log records go.

Every module logs to a child of the ``engineio_wsgi`` logger and never adds a
handler. ``Server(logger=<logging.Logger>)`` hangs that whole hierarchy under
the given logger, so that its level, filters, handlers and propagation apply
to the library's records, as python-engineio does with the logger it is given.
This is process-wide: the last server created with a logger decides.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

PACKAGE = 'engineio_wsgi'


def configure(logger: bool | logging.Logger) -> logging.Logger:
    """Apply a ``Server(logger=...)`` value; returns the logger records go to."""
    package = logging.getLogger(PACKAGE)
    if logger is True:
        package.setLevel(logging.INFO)
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
    if package.parent is not parent:
        package.parent = parent
        # loggers cache whether a level is enabled; setLevel clears every cache
        package.setLevel(package.level)


def visible(logger: logging.Logger) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Where lines that people must see go (start-up lines, configuration
    warnings): ``logger``, or, when nothing would show its lines (no handler
    anywhere, as under gunicorn, which sets up only its own loggers),
    gunicorn's error log, where people look."""
    if logger.hasHandlers() or 'gunicorn' not in sys.modules:
        return logger
    gunicorn_log = logging.getLogger('gunicorn.error')
    if not gunicorn_log.handlers:
        return logger
    return _Prefixed(gunicorn_log, {})


class _Prefixed(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f'engineio_wsgi: {msg}', kwargs
