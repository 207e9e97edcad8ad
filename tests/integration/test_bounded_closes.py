"""The end of a session reaches the application on the bounded pool:
"send buffer full" never runs the disconnect handler inside the ``send()``
that hit the bound.

The server runs tests/apps/bounds.py, whose disconnect handler waits at a
gate until the test opens it (slow application code, held as long as the
test needs to look): a handler run on a thread per session would keep every
such thread alive, one run inside ``send()`` would keep that send from
returning.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.live import LiveServer, PollingClient, http_request, start_server, wait_until

pytestmark = pytest.mark.timeout(120)

#: max_worker_threads of the servers here
CAP = 8


def report(server: LiveServer, path: str) -> Any:
    resp = http_request(server.port, 'GET', path)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def open_gate(server: LiveServer) -> None:
    report(server, '/__open_gate')


@pytest.fixture(params=['gunicorn-gthread', 'gunicorn-gevent'])
def flood_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """At most 50 packets queued per session; the disconnect handler gated."""
    env = {'EIO_MAX_WORKER_THREADS': str(CAP), 'EIO_MAX_QUEUED_PACKETS': '50',
           'EIO_DISCONNECT_GATE': '1', 'EIO_LOG_LEVEL': 'WARNING'}
    with start_server(request.param, app='tests.apps.bounds:app', env=env) as server:
        yield server


def test_send_buffer_full_runs_the_disconnect_handler_on_the_pool_not_inside_send(
        flood_server: LiveServer) -> None:
    client = PollingClient(flood_server)
    client.handshake()
    sid = client.sid
    assert sid
    # the client never polls again: what the application sends stays queued,
    # and the 51st send finds the queue full
    report(flood_server, f'/__flood?sid={sid}&n=60')
    try:
        calls = wait_until(lambda: report(flood_server, '/__disconnect_calls').get(sid),
                           timeout=10, message='the disconnect handler called')
        flood = report(flood_server, '/__flood_state')
        assert calls['inside_send'] is False, (calls, flood)
        assert calls['thread'] != flood['thread'], (calls, flood)
        # the sender finished while the handler still waits at the gate: the
        # send that hit the bound returned without waiting for it
        flood = wait_until(lambda: (state := report(flood_server, '/__flood_state'))['done']
                           and state, timeout=10, message='the sends finished')
        assert flood['sends'] == 60 and flood['ended_at'] == 51, flood
        assert report(flood_server, '/__handlers')['waiting'] == 1
    finally:
        open_gate(flood_server)
    assert report(flood_server, '/__reasons') == {sid: ['send buffer full']}
