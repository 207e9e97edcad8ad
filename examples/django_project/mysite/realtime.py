"""The Engine.IO server of the project and its event handlers.

Every message a browser sends is broadcast to everyone connected. Views push
messages with ``broadcast()`` (see views.announce).
"""

from __future__ import annotations

import json
import threading

import engineio_wsgi

eio = engineio_wsgi.Server()

clients: set[str] = set()
clients_lock = threading.Lock()
stats = {'messages': 0}


def broadcast(message: dict) -> None:
    """Send ``message`` (as JSON text) to every connected client."""
    text = json.dumps(message)
    with clients_lock:
        targets = list(clients)
    for sid in targets:
        eio.send(sid, text)     # a client gone meanwhile is skipped


def online() -> int:
    with clients_lock:
        return len(clients)


@eio.on('connect')
def connect(sid, environ):
    with clients_lock:
        clients.add(sid)
    eio.send(sid, json.dumps({'type': 'welcome', 'you': sid[:6], 'online': online()}))


@eio.on('message')
def message(sid, data):
    if not isinstance(data, str):
        return                  # this project only deals in text
    stats['messages'] += 1
    broadcast({'type': 'chat', 'from': sid[:6], 'text': data[:1000]})


@eio.on('disconnect')
def disconnect(sid, reason):
    with clients_lock:
        clients.discard(sid)
