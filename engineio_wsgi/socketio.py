"""python-socketio on this engine: ``Server`` is ``socketio.Server`` with
engineio_wsgi's ``Server`` as its Engine.IO layer. Nothing global is patched:
only servers built from this class use it.

    from engineio_wsgi.socketio import Server, WSGIApp
    sio = Server(cors_allowed_origins=[...])
    app = WSGIApp(sio, wsgi_app)

Needs python-socketio 5 (this package's ``socketio`` extra).
"""

from __future__ import annotations

from typing import Any

import socketio

from .middleware import WSGIApp as BaseWSGIApp
from .server import Server as EngineServer

__all__ = ['Server', 'WSGIApp']

#: options Flask-SocketIO leaves in what it gives ``socketio.Server``; they are
#: not the engine's (python-engineio ignores every unknown name, this engine
#: refuses them)
_NOT_ENGINE_OPTIONS = ('message_queue',)


class WSGIApp(BaseWSGIApp):
    """``socketio.WSGIApp``'s arguments on engineio_wsgi's ``WSGIApp``: Socket.IO
    at ``/socket.io/``, ``static_files`` as this library serves them, everything
    else to ``wsgi_app``. (``socketio.WSGIApp`` itself works too: it only calls
    ``handle_request``; Flask-SocketIO uses it.)"""

    def __init__(self, socketio_app: Server, wsgi_app: Any = None,
                 static_files: dict[str, Any] | None = None,
                 socketio_path: str = 'socket.io') -> None:
        super().__init__(socketio_app, wsgi_app, static_files=static_files,
                         engineio_path=socketio_path)


class Server(socketio.Server):  # type: ignore[misc]
    """``socketio.Server`` running on engineio_wsgi; same arguments and API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for name in _NOT_ENGINE_OPTIONS:
            kwargs.pop(name, None)
        super().__init__(*args, **kwargs)
        if not isinstance(self.eio, EngineServer):
            # the hook below is python-socketio's own (5.x); say so if it went away
            raise RuntimeError(
                f'python-socketio {getattr(socketio, "__version__", "")} did not build its '
                'engine with _engineio_server_class(); this python-socketio version is not '
                'supported by engineio_wsgi.socketio')

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer

    def disconnect(self, sid: str, namespace: str | None = None,
                   ignore_queue: bool = False) -> None:
        """python-socketio's ``disconnect``: it sends the DISCONNECT packet,
        then runs the disconnect handler. A client that closes on reading
        that packet ends the Engine.IO session meanwhile; the engine holds
        that end back until this returns, so the handler reads the session
        (and Flask-SocketIO its request context) whatever the client does."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace or '/')
        if eio_sid is None:
            super().disconnect(sid, namespace=namespace, ignore_queue=ignore_queue)
            return
        with self.eio.disconnecting(eio_sid):
            super().disconnect(sid, namespace=namespace, ignore_queue=ignore_queue)

    def instrument(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "the Socket.IO Admin UI instrumentation (sio.instrument()) patches python-engineio's "
            'internal classes and does not work on engineio_wsgi; run that server on '
            'python-engineio (socketio.Server) to use the Admin UI')
