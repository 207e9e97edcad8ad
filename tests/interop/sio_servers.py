"""Helpers for the Socket.IO interop tests: the test applications
(tests/apps/sio_app.py, flask_sio_app.py) by name, the (application, server
kind) pairs they run on, and what their HTTP routes and logs tell.
"""

from __future__ import annotations

import time
from typing import Any

from tests.live import LiveServer, http_request

from .conftest import KINDS

APPS = {
    'python-socketio': 'tests.apps.sio_app:app',
    'flask-socketio': 'tests.apps.flask_sio_app:app',
}
PARAMS = [(name, kind) for name in APPS for kind in KINDS]


def param_id(param: tuple[str, str]) -> str:
    return f'{param[0]}-{param[1]}'


def get_json(server: LiveServer, path: str) -> Any:
    resp = http_request(server.port, 'GET', path)
    assert resp.status == 200, resp
    return resp.json()


def wait_disconnects(server: LiveServer, user: str, count: int,
                     timeout: float = 10.0) -> list[dict[str, Any]]:
    """What the server's disconnect handlers read for ``user``, once ``count`` ran."""
    deadline = time.monotonic() + timeout
    while True:
        found = get_json(server, f'/disconnects?user={user}')
        if len(found) >= count or time.monotonic() >= deadline:
            return sorted(found, key=lambda d: d['namespace'])
        time.sleep(0.05)


def assert_clean_log(server: LiveServer) -> None:
    log = server.log()
    assert 'Traceback' not in log, f'traceback in the server log:\n{server.log_tail(120)}'
    assert server.alive(), f'server died:\n{server.log_tail(120)}'


def emit_from_view(server: LiveServer, room: str, text: str) -> None:
    resp = http_request(server.port, 'POST', f'/emit?room={room}', body=text.encode(),
                        headers={'Content-Type': 'text/plain'})
    assert resp.status == 200 and resp.body == b'sent', resp


def info(server: LiveServer) -> dict[str, Any]:
    return get_json(server, '/info')  # type: ignore[no-any-return]
