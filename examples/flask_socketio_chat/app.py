"""A rooms chat on Flask-SocketIO, served by engineio_wsgi.

Browsers join a room and talk there; ``POST /api/rooms/<room>/announce`` (an
ordinary Flask view) pushes an announcement to one room; ``GET /api/rooms``
counts the members of each room. See README.md for how to run it.
"""

from __future__ import annotations

import threading

from flask import Flask, jsonify, render_template, request
from flask_socketio import emit, join_room, leave_room

from engineio_wsgi.flask_socketio import SocketIO  # the one line that differs

app = Flask(__name__)
socketio = SocketIO(app)

# who is where: sid -> (name, room)
members: dict[str, tuple[str, str]] = {}
members_lock = threading.Lock()


def room_sizes() -> dict[str, int]:
    with members_lock:
        sizes: dict[str, int] = {}
        for _, room in members.values():
            sizes[room] = sizes.get(room, 0) + 1
        return sizes


@socketio.on('join')
def join(data):
    name = str(data.get('name') or 'guest')[:40]
    room = str(data.get('room') or 'lobby')[:40]
    with members_lock:
        previous = members.get(request.sid)
        members[request.sid] = (name, room)
    if previous is not None and previous[1] != room:
        leave_room(previous[1])
        emit('system', {'text': f'{previous[0]} left'}, to=previous[1])
    join_room(room)
    emit('system', {'text': f'{name} joined {room}'}, to=room)
    return {'room': room, 'members': room_sizes().get(room, 0)}


@socketio.on('say')
def say(text):
    with members_lock:
        member = members.get(request.sid)
    if member is None or not isinstance(text, str) or not text.strip():
        return
    name, room = member
    emit('chat', {'from': name, 'text': text[:1000], 'room': room}, to=room)


@socketio.on('disconnect')
def disconnect(reason):
    with members_lock:
        member = members.pop(request.sid, None)
    if member is not None:
        emit('system', {'text': f'{member[0]} left'}, to=member[1])


# -- ordinary Flask routes --------------------------------------------------------

@app.route('/')
def index():
    return render_template('index.html', title='Flask-SocketIO rooms chat')


@app.route('/api/rooms')
def api_rooms():
    return jsonify(room_sizes())


@app.route('/api/rooms/<room>/announce', methods=['POST'])
def api_announce(room):
    text = request.get_data(as_text=True).strip()
    if not text:
        return jsonify(error='empty announcement'), 400
    socketio.emit('announcement', {'text': text[:1000]}, to=room)
    return jsonify(sent=True, room=room)
