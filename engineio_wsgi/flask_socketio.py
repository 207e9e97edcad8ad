"""Flask-SocketIO on this engine: ``SocketIO`` is ``flask_socketio.SocketIO``
whose Socket.IO server runs on engineio_wsgi. Nothing global is patched.

    from engineio_wsgi.flask_socketio import SocketIO
    socketio = SocketIO(app)          # everything else as in Flask-SocketIO

Needs Flask-SocketIO 5 (this package's ``flask-socketio`` extra).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import flask_socketio

from .options import ASYNC_MODES
from .socketio import Server

__all__ = ['SocketIO']

#: the loggers of the Socket.IO server that Flask-SocketIO builds and this
#: class replaces: its lines ("Server initialized for gevent.") would speak of
#: a server that never runs. Not registered with ``logging``, shows nothing.
_SILENT = logging.Logger('engineio_wsgi.flask_socketio.replaced')
_SILENT.disabled = True
_SILENT.propagate = False
_LOGGERS = ('logger', 'engineio_logger')
_UNSET = object()


class SocketIO(flask_socketio.SocketIO):  # type: ignore[misc]
    """``flask_socketio.SocketIO`` running on engineio_wsgi; same arguments and API."""

    def init_app(self, app: Any, **kwargs: Any) -> None:
        mode = kwargs.get('async_mode', self.server_options.get('async_mode'))
        if mode is not None and mode not in ASYNC_MODES:
            raise ValueError(
                f'async_mode={mode!r} is not one of engineio_wsgi\'s: use async_mode="gevent" '
                f'(gunicorn -k gevent, or socketio.run with gevent installed) or '
                f'async_mode="threading", or leave it unset (it is detected)')
        given = {name: kwargs.get(name, self.server_options.get(name, _UNSET))
                 for name in _LOGGERS}
        super().init_app(app, **{**kwargs, **dict.fromkeys(_LOGGERS, _SILENT)})
        for name, value in given.items():
            if value is _UNSET:
                self.server_options.pop(name, None)
            else:
                self.server_options[name] = value
        # Flask-SocketIO builds socketio.Server itself and offers no way to name
        # another class: build ours from the same options and give it what
        # Flask-SocketIO attached to the first one (never used, never started)
        server = Server(**self.server_options)
        for event, handler, namespace in self.handlers:
            server.on(event, handler, namespace=namespace)
        for namespace_handler in self.namespace_handlers:
            server.register_namespace(namespace_handler)
        self.server = server
        self.async_mode = server.async_mode
        if app is not None:
            self.sockio_mw.engineio_app = server

    def run(self, app: Any, host: str | None = None, port: int | None = None,
            **kwargs: Any) -> None:
        """Flask-SocketIO's ``run``, on the server stock Flask-SocketIO picks:
        gevent's pywsgi (with gevent-websocket's handler when that is installed)
        when gevent is installed and ``async_mode`` is unset or "gevent", else
        werkzeug (which Flask-SocketIO refuses outside a terminal unless
        ``allow_unsafe_werkzeug=True``)."""
        engine = self.server.eio
        mode = engine.options.async_mode
        if mode is None:
            # the engine would only see gevent's server at its first request;
            # Flask-SocketIO picks the server from the mode before that
            mode = 'gevent' if importlib.util.find_spec('gevent') else 'threading'
        engine.decide_async_mode(mode)
        self.async_mode = mode
        super().run(app, host=host, port=port, **kwargs)
