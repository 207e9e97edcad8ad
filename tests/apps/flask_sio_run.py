"""A Flask-SocketIO application on engineio_wsgi, started as Flask-SocketIO's
documentation shows: ``python -m tests.apps.flask_sio_run`` calls
``socketio.run(app)``; ``app`` is there for gunicorn too. Both loggers are
on (``logger=True, engineio_logger=True``), so that the log shows every line
the Socket.IO and Engine.IO layers write. Configured from the environment:

    SIO_ASYNC_MODE  the async_mode argument (unset: none given)
    SIO_PORT        where ``socketio.run`` listens (127.0.0.1)

Every ``message`` event is sent back to its sender.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from flask import Flask
from flask_socketio import send

from engineio_wsgi.flask_socketio import SocketIO

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format='%(levelname)s %(name)s: %(message)s')

options: dict[str, Any] = {'logger': True, 'engineio_logger': True}
if os.environ.get('SIO_ASYNC_MODE'):
    options['async_mode'] = os.environ['SIO_ASYNC_MODE']

app = Flask(__name__)
socketio = SocketIO(app, **options)


@socketio.on('message')
def echo(data: Any) -> None:
    send(data)   # to the sender only


@app.route('/')
def index() -> str:
    return 'flask'


if __name__ == '__main__':
    print(f'LISTENING {os.environ["SIO_PORT"]}', flush=True)
    socketio.run(app, host='127.0.0.1', port=int(os.environ['SIO_PORT']))
