"""The application of tests/apps/sio_app.py written for Flask-SocketIO, on
engineio_wsgi: same events, same HTTP routes (plain Flask views), same answers.
The user is kept both in Flask's session (managed by Flask-SocketIO) and in the
Socket.IO session (``socketio.server.save_session``), which the disconnect
handler reads.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from flask import Flask, jsonify, request, session
from flask_socketio import ConnectionRefusedError, disconnect, emit, join_room

from engineio_wsgi.flask_socketio import SocketIO

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format='%(levelname)s %(name)s: %(message)s')

flask_app = Flask(__name__)
flask_app.config['SECRET_KEY'] = 'tests only'
socketio = SocketIO(flask_app, cors_allowed_origins='*',
                    ping_interval=float(os.environ.get('SIO_PING_INTERVAL', 5)),
                    ping_timeout=float(os.environ.get('SIO_PING_TIMEOUT', 5)),
                    max_http_buffer_size=2_000_000)
DISCONNECTS: list[dict[str, Any]] = []


def _user(auth: Any) -> str:
    if not isinstance(auth, dict) or auth.get('token') != 'secret':
        raise ConnectionRefusedError('bad token')
    return str(auth.get('user', ''))


@socketio.on('connect')
def connect(auth: Any) -> None:
    user = _user(auth)
    session['user'] = user
    socketio.server.save_session(request.sid, {'user': user})


@socketio.on('connect', namespace='/chat')
def chat_connect(auth: Any) -> None:
    user = _user(auth)
    session['user'] = user
    socketio.server.save_session(request.sid, {'user': user}, namespace='/chat')


@socketio.on('disconnect')
def on_disconnect(reason: str) -> None:
    DISCONNECTS.append({'user': socketio.server.get_session(request.sid)['user'],
                        'reason': reason, 'namespace': '/'})


@socketio.on('disconnect', namespace='/chat')
def chat_disconnect(reason: str) -> None:
    user = socketio.server.get_session(request.sid, namespace='/chat')['user']
    DISCONNECTS.append({'user': user, 'reason': reason, 'namespace': '/chat'})


@socketio.on('echo')
def echo(*args: Any) -> tuple[Any, ...]:
    return args


@socketio.on('whoami')
def whoami() -> str:
    return str(session['user'])


@socketio.on('join')
def join(room: str) -> str:
    join_room(room)
    return 'joined'


@socketio.on('to_room')
def to_room(room: str, data: Any) -> str:
    emit('room_msg', data, to=room)
    return 'sent'


@socketio.on('to_all')
def to_all(data: Any) -> str:
    emit('all_msg', data, broadcast=True)
    return 'sent'


@socketio.on('bg')
def background(data: Any) -> str:
    socketio.start_background_task(socketio.emit, 'bg_msg', data, to=request.sid)
    return 'started'


@socketio.on('burst')
def burst(count: int, pause_ms: float = 0) -> str:
    sid = request.sid

    def run() -> None:
        for i in range(count):
            socketio.emit('seq', i, to=sid)
            if pause_ms:
                socketio.sleep(pause_ms / 1000)
        socketio.emit('seq_done', count, to=sid)
    socketio.start_background_task(run)
    return 'started'


@socketio.on('ask')
def ask(question: str) -> Any:
    return socketio.call('question', question, to=request.sid, timeout=10)


@socketio.on('kick')
def kick() -> None:
    disconnect()


@socketio.on('echo', namespace='/chat')
def chat_echo(*args: Any) -> list[Any]:
    return ['chat', *args]


@socketio.on('whoami', namespace='/chat')
def chat_whoami() -> str:
    return str(session['user'])


@flask_app.post('/emit')
def emit_view() -> str:
    socketio.emit('room_msg', request.get_data(as_text=True), to=request.args['room'])
    return 'sent'


@flask_app.get('/disconnects')
def disconnects() -> Any:
    return jsonify([d for d in DISCONNECTS if d['user'] == request.args.get('user')])


@flask_app.get('/page')
def page() -> str:
    return '<!doctype html><meta charset="utf-8"><title>Socket.IO test</title>'


@flask_app.get('/info')
def info() -> Any:
    return jsonify({'async_mode': socketio.server.eio.async_mode,
                    'engine': type(socketio.server.eio).__module__})


app = flask_app
