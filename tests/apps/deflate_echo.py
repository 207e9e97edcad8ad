"""An echo app with permessage-deflate turned on (websocket_compression=True)."""

import engineio_wsgi

eio = engineio_wsgi.Server(websocket_compression=True, ping_interval=5, ping_timeout=5)


@eio.on('message')
def echo(sid, data):
    eio.send(sid, data)


app = engineio_wsgi.WSGIApp(eio)
