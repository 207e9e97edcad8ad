"""Flask-SocketIO on this engine: ``SocketIO`` is ``flask_socketio.SocketIO``
whose Socket.IO server runs on engineio_wsgi. Nothing global is patched.

    from engineio_wsgi.flask_socketio import SocketIO
    socketio = SocketIO(app)          # everything else as in Flask-SocketIO

Needs Flask-SocketIO 5 (this package's ``flask-socketio`` extra).
"""

from __future__ import annotations

from typing import Any

import flask_socketio

from .socketio import Server

__all__ = ['SocketIO']


class SocketIO(flask_socketio.SocketIO):  # type: ignore[misc]
    """``flask_socketio.SocketIO`` running on engineio_wsgi; same arguments and API."""

    def init_app(self, app: Any, **kwargs: Any) -> None:
        super().init_app(app, **kwargs)
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
