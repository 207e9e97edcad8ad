"""The Socket.IO benchmark application, shared by ``sio_eiowsgi.py`` and ``sio_pyeio.py``.

python-socketio's ``Server`` with three events, the same on every engine:

- ``echo``: the data comes back as the acknowledgement;
- ``join``: the client enters the room ``bench`` (acknowledged);
- ``broadcast``: the server emits ``b`` with the data to the room ``bench``.

Environment: BENCH_ASYNC_MODE (gevent | threading), BENCH_PING_INTERVAL,
BENCH_PING_TIMEOUT (seconds, whole numbers so every server advertises the same).
"""

from __future__ import annotations

import os
from typing import Any

import socketio

ROOM = 'bench'


def settings() -> dict[str, Any]:
    return {
        'async_mode': os.environ.get('BENCH_ASYNC_MODE') or None,
        'ping_interval': int(os.environ.get('BENCH_PING_INTERVAL', '25')),
        'ping_timeout': int(os.environ.get('BENCH_PING_TIMEOUT', '20')),
        'cors_allowed_origins': '*',
    }


def add_handlers(sio: socketio.Server) -> socketio.Server:
    @sio.on('echo')
    def echo(sid: str, data: Any) -> Any:
        return data

    @sio.on('join')
    def join(sid: str) -> bool:
        sio.enter_room(sid, ROOM)
        return True

    @sio.on('broadcast')
    def broadcast(sid: str, data: Any) -> None:
        sio.emit('b', data, room=ROOM)

    return sio
