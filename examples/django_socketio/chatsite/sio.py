"""The Socket.IO server and its events: python-socketio, on engineio_wsgi.

Browsers join a room and talk there; each session remembers its name and room
in python-socketio's session store.
"""

from engineio_wsgi.socketio import Server  # instead of: from socketio import Server

sio = Server()


def room_sizes():
    sizes = {}
    for room, members in sio.manager.rooms.get('/', {}).items():
        # python-socketio keeps one private room per client, named by its sid
        if room is not None and room not in members:
            sizes[room] = len(members)
    return sizes


@sio.on('join')
def join(sid, data):
    name = str(data.get('name') or 'guest')[:40]
    room = str(data.get('room') or 'lobby')[:40]
    with sio.session(sid) as session:
        previous = session.get('room')
        session.update(name=name, room=room)
    if previous is not None and previous != room:
        sio.leave_room(sid, previous)
        sio.emit('system', {'text': f'{name} left'}, to=previous)
    sio.enter_room(sid, room)
    sio.emit('system', {'text': f'{name} joined {room}'}, to=room)
    return {'room': room, 'members': room_sizes().get(room, 0)}


@sio.on('say')
def say(sid, text):
    session = sio.get_session(sid)
    if 'room' not in session or not isinstance(text, str) or not text.strip():
        return
    sio.emit('chat', {'from': session['name'], 'text': text[:1000], 'room': session['room']},
             to=session['room'])


@sio.on('disconnect')
def disconnect(sid, reason):
    session = sio.get_session(sid)     # still readable here, whatever the reason
    if 'room' in session:
        sio.emit('system', {'text': f'{session["name"]} left'}, to=session['room'],
                 skip_sid=sid)
