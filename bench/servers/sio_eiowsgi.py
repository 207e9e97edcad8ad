"""python-socketio on engineio_wsgi, for ``gunicorn sio_eiowsgi:app`` (see ``sio_app.py``).

The one line that differs from ``sio_pyeio.py`` is the import: the README's
switch for python-socketio.
"""

from sio_app import add_handlers, settings

from engineio_wsgi.socketio import Server, WSGIApp

sio = add_handlers(Server(**settings()))
app = WSGIApp(sio)
