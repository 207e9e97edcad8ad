"""python-socketio on python-engineio, for ``gunicorn sio_pyeio:app`` (see ``sio_app.py``)."""

import socketio
from sio_app import add_handlers, settings

sio = add_handlers(socketio.Server(**settings()))
app = socketio.WSGIApp(sio)
