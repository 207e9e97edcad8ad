"""A python-socketio application on engineio_wsgi, for the Socket.IO interop tests.

``app`` is ``WSGIApp(sio, http)``: Socket.IO at ``/socket.io/``, and a plain WSGI
application for everything else. tests/apps/flask_sio_app.py is the same
application written for Flask-SocketIO; both answer the same events:

- connect with ``auth={'token': 'secret', 'user': NAME}``; any other auth is
  refused with the message ``bad token``. The user is kept in the session.
- ``echo`` acks its arguments back; ``whoami`` acks the session's user.
- ``join`` ROOM enters a room; ``to_room`` ROOM, DATA emits ``room_msg`` DATA to
  the room; ``to_all`` DATA emits ``all_msg`` DATA to everyone.
- ``bg`` DATA emits ``bg_msg`` DATA to the sender from a background task.
- ``burst`` N [PAUSE_MS] emits ``seq`` 0..N-1 to the sender from a background
  task (PAUSE_MS apart, default 0), then ``seq_done`` N.
- ``ask`` Q: the server asks the sender ``question`` Q (an emit with an ack,
  ``sio.call``) and acks the client's answer back.
- ``kick``: the server disconnects the sender.
- namespace ``/chat``: ``echo`` acks ``['chat', *args]``; ``whoami`` acks the
  ``/chat`` session's user (its own connect stores it too).

HTTP: ``POST /emit?room=R`` emits ``room_msg`` (the body, as text) to room R
from a plain view and answers ``sent``; ``GET /disconnects?user=U`` answers the
JSON list of what the disconnect handler read for that user
(``{"user", "reason", "namespace"}``); ``GET /info`` answers
``{"async_mode", "engine"}``; ``GET /page`` is a blank HTML page.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

import socketio

from engineio_wsgi.socketio import Server, WSGIApp

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format='%(levelname)s %(name)s: %(message)s')

sio = Server(cors_allowed_origins='*', ping_interval=float(os.environ.get('SIO_PING_INTERVAL', 5)),
             ping_timeout=float(os.environ.get('SIO_PING_TIMEOUT', 5)),
             max_http_buffer_size=2_000_000)
DISCONNECTS: list[dict[str, Any]] = []
#: a blank page of this origin, for browser clients
PAGE = b'<!doctype html><meta charset="utf-8"><title>Socket.IO test</title>'


def _user(auth: Any) -> str:
    if not isinstance(auth, dict) or auth.get('token') != 'secret':
        raise socketio.exceptions.ConnectionRefusedError('bad token')
    return str(auth.get('user', ''))


@sio.on('connect')
def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    sio.save_session(sid, {'user': _user(auth)})


@sio.on('connect', namespace='/chat')
def chat_connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    with sio.session(sid, namespace='/chat') as session:
        session['user'] = _user(auth)


@sio.on('disconnect')
def disconnect(sid: str, reason: str) -> None:
    DISCONNECTS.append({'user': sio.get_session(sid)['user'], 'reason': reason, 'namespace': '/'})


@sio.on('disconnect', namespace='/chat')
def chat_disconnect(sid: str, reason: str) -> None:
    DISCONNECTS.append({'user': sio.get_session(sid, namespace='/chat')['user'],
                        'reason': reason, 'namespace': '/chat'})


@sio.on('echo')
def echo(sid: str, *args: Any) -> tuple[Any, ...]:
    return args


@sio.on('whoami')
def whoami(sid: str) -> str:
    return str(sio.get_session(sid)['user'])


@sio.on('join')
def join(sid: str, room: str) -> str:
    sio.enter_room(sid, room)
    return 'joined'


@sio.on('to_room')
def to_room(sid: str, room: str, data: Any) -> str:
    sio.emit('room_msg', data, to=room)
    return 'sent'


@sio.on('to_all')
def to_all(sid: str, data: Any) -> str:
    sio.emit('all_msg', data)
    return 'sent'


@sio.on('bg')
def background(sid: str, data: Any) -> str:
    sio.start_background_task(sio.emit, 'bg_msg', data, to=sid)
    return 'started'


@sio.on('burst')
def burst(sid: str, count: int, pause_ms: float = 0) -> str:
    def run() -> None:
        for i in range(count):
            sio.emit('seq', i, to=sid)
            if pause_ms:
                sio.sleep(pause_ms / 1000)
        sio.emit('seq_done', count, to=sid)
    sio.start_background_task(run)
    return 'started'


@sio.on('ask')
def ask(sid: str, question: str) -> Any:
    return sio.call('question', question, to=sid, timeout=10)


@sio.on('kick')
def kick(sid: str) -> None:
    sio.disconnect(sid)


@sio.on('echo', namespace='/chat')
def chat_echo(sid: str, *args: Any) -> list[Any]:
    return ['chat', *args]


@sio.on('whoami', namespace='/chat')
def chat_whoami(sid: str) -> str:
    return str(sio.get_session(sid, namespace='/chat')['user'])


def http(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get('PATH_INFO', '')
    query = {k: v[0] for k, v in parse_qs(environ.get('QUERY_STRING', '')).items()}
    if path == '/emit' and environ['REQUEST_METHOD'] == 'POST':
        size = int(environ.get('CONTENT_LENGTH') or 0)
        text = environ['wsgi.input'].read(size).decode('utf-8')
        sio.emit('room_msg', text, to=query['room'])
        return _answer(start_response, 'text/plain', b'sent')
    if path == '/disconnects':
        found = [d for d in DISCONNECTS if d['user'] == query.get('user')]
        return _answer(start_response, 'application/json', json.dumps(found).encode())
    if path == '/page':
        return _answer(start_response, 'text/html; charset=utf-8', PAGE)
    if path == '/info':
        info = {'async_mode': sio.async_mode, 'engine': type(sio.eio).__module__}
        return _answer(start_response, 'application/json', json.dumps(info).encode())
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'not found']


def _answer(start_response: Any, kind: str, body: bytes) -> list[bytes]:
    start_response('200 OK', [('Content-Type', kind), ('Content-Length', str(len(body)))])
    return [body]


app = WSGIApp(sio, http)
