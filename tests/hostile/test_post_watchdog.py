"""Many concurrent POSTs on one sid, some of whose bodies trickle in and never
complete, must harm nobody: each POST is answered (its body in bounded time,
or refused), a kept-alive connection goes on serving its next request, and
healthy sessions (the bystanders: a polling and a WebSocket session with a
1 s heartbeat) keep working. Looped, because what goes wrong here depends on
timing: the POST-body watchdog firing as the request ends, a watchdog lost
when the session closes while a body is still being read, and a server that
waits for a refused client to stop sending before it closes the connection
(gunicorn's gthread worker does that on its one main thread).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from tests.hostile.tools import Bystanders, wait_sessions
from tests.live import (
    LiveServer,
    PollingClient,
    Response,
    build_request,
    read_response,
)

ROUNDS = 6
POSTS = 10
STALLED = (1, 2, 4, 5, 7, 8)   # these trickle a body that never completes
BODY_TIMEOUT = 1.0         # http_body_timeout of the 'hostile' server
ANSWERED_WITHIN = BODY_TIMEOUT + 4.0


def post_then_reuse(port: int, target: str, stalled: bool) -> tuple[Response | None, int | None]:
    """One POST; a whole body goes on a kept-alive connection, then a second
    request on it; a stalled one says ``Connection: close``, like the
    hostile clients, and keeps trickling after the answer. Returns the POST's response
    (None: no answer in time) and the status of the second request (None when
    the server closed the connection, as it may after an error)."""
    body = b'4' + b'x' * 99 if stalled else b'4x'
    head = build_request(port, 'POST', target, None,
                         [('Content-Type', 'text/plain'), ('Content-Length', str(len(body))),
                          ('Connection', 'close' if stalled else 'keep-alive')])
    with socket.create_connection(('127.0.0.1', port), timeout=ANSWERED_WITHIN) as sock:
        sock.sendall(head + (body[:10] if stalled else body))
        started = time.monotonic()
        if stalled:
            # a byte every 0.1 s for 3 s, whatever the server answers meanwhile
            sender = threading.Thread(target=trickle, args=(sock, 30), daemon=True)
            sender.start()
        try:
            resp = read_response(sock, 'POST', started)
        except (TimeoutError, OSError, http.client.HTTPException):
            return None, None
        if stalled:
            sender.join(5)
            return resp, None
        if (resp.header('Connection') or '').lower() == 'close':
            return resp, None
        sock.sendall(build_request(port, 'GET', '/__stats', None, [('Connection', 'close')]))
        try:
            return resp, read_response(sock, 'GET', time.monotonic()).status
        except (TimeoutError, OSError, http.client.HTTPException):
            return resp, 0


def trickle(sock: socket.socket, count: int) -> None:
    for _ in range(count):
        time.sleep(0.1)   # the scenario: a slow sender
        try:
            sock.send(b'x')
        except OSError:   # cut off by the server, or closed here
            return


@pytest.mark.timeout(180)
def test_concurrent_posts_with_stalled_bodies_harm_nobody(bystanders: Bystanders,
                                                          hostile_server: LiveServer):
    for round_no in range(ROUNDS):
        c = PollingClient(hostile_server)
        c.handshake()
        results: list[tuple[Response | None, int | None]] = [(None, None)] * POSTS

        def one(i: int, target: str, into: list) -> None:
            into[i] = post_then_reuse(hostile_server.port, target, i in STALLED)
        threads = [threading.Thread(target=one, args=(i, c.target(), results))
                   for i in range(POSTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(ANSWERED_WITHIN + 5)
        statuses = [None if r is None else r.status for r, _ in results]
        assert None not in statuses, f'round {round_no}: POSTs never answered: {statuses}'
        assert set(statuses) <= {200, 400}, statuses
        for i in STALLED:
            assert statuses[i] == 400, f'round {round_no}: stalled body accepted: {statuses}'
        reused = [after for _, after in results if after is not None]
        assert all(status == 200 for status in reused), \
            f'round {round_no}: a kept-alive connection lost its next request: {reused}'
        c.close()
        # the canary answers its pings and echoes after every round
        bystanders.check()
    # no session left behind but the bystanders'
    wait_sessions(hostile_server, at_most=2)
