"""python-socketio on engineio_wsgi, for ``gunicorn sio_eiowsgi:app`` (see ``sio_app.py``)."""

import socketio
from sio_app import add_handlers, settings

import engineio_wsgi


class Engine(engineio_wsgi.Server):
    # TEMPORARY until engineio_wsgi.Server has send_packet (server emits need it)
    def send_packet(self, sid, pkt):
        self.send(sid, pkt.data)


class Server(socketio.Server):
    """python-socketio's server with engineio_wsgi as its engine."""

    def _engineio_server_class(self):
        return Engine


sio = add_handlers(Server(**settings()))
app = engineio_wsgi.WSGIApp(sio.eio, engineio_path='socket.io')
