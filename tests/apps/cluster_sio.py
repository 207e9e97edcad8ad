"""python-socketio with ``socketio.RedisManager`` on a clustered engine
(``cluster=``): rooms and broadcasts across processes, for the cluster tests.

    EIO_CLUSTER=redis://127.0.0.1:6379/0 gunicorn -k gevent -w 3 tests.apps.cluster_sio:app

Both the engine and python-socketio's manager use the Redis that
``EIO_CLUSTER`` names. Events (each acks its answer):

- ``echo`` *args: acks the arguments back;
- ``whoami``: acks the node id of the process that runs the handler (the
  owner of the session);
- ``join`` ROOM: enters the room, acks the node id;
- ``to_room`` ROOM, DATA: emits ``room_msg`` DATA to the room, acks ``sent``;
- ``to_all`` DATA: emits ``all_msg`` DATA to everyone, acks ``sent``.

``EIO_PING_INTERVAL`` / ``EIO_PING_TIMEOUT`` (seconds) set the heartbeat.
HTTP outside ``/socket.io/``: ``/__node`` answers this process's node id.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import socketio

from engineio_wsgi.cluster.node import node_id
from engineio_wsgi.socketio import Server, WSGIApp

CLUSTER = os.environ['EIO_CLUSTER']

sio = Server(client_manager=socketio.RedisManager(CLUSTER), cluster=CLUSTER,
             ping_interval=float(os.environ.get('EIO_PING_INTERVAL', 5)),
             ping_timeout=float(os.environ.get('EIO_PING_TIMEOUT', 5)))


@sio.on('echo')
def echo(sid: str, *args: Any) -> tuple[Any, ...]:
    return args


@sio.on('whoami')
def whoami(sid: str) -> str:
    return node_id()


@sio.on('join')
def join(sid: str, room: str) -> str:
    sio.enter_room(sid, room)
    return node_id()


@sio.on('to_room')
def to_room(sid: str, room: str, data: Any) -> str:
    sio.emit('room_msg', data, to=room)
    return 'sent'


@sio.on('to_all')
def to_all(sid: str, data: Any) -> str:
    sio.emit('all_msg', data)
    return 'sent'


def http(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = node_id().encode() if environ.get('PATH_INFO') == '/__node' else b'fallback'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]


app = WSGIApp(sio, http)
