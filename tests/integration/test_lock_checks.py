"""The lock assertions (engineio_wsgi.locks) are on in the test run, in this
process and in every server it starts; ENGINEIO_WSGI_TEST_LOCKS=0 turns them
off in both (tests/conftest.py): scripts/test runs a few files so, for the
production lock path."""

from __future__ import annotations

import os
import threading

from engineio_wsgi import locks
from tests.live import LiveServer, http_request

#: what this run asked for
CHECKING = os.environ.get('ENGINEIO_WSGI_TEST_LOCKS', '1') != '0'


def test_this_process_checks_lock_rules_unless_asked_not_to() -> None:
    assert locks.CHECK is CHECKING
    # off, a session's lock is the backend's own, unwrapped
    assert isinstance(locks.guarded(threading.Lock()), locks.OwnedLock) is CHECKING


def test_the_servers_check_lock_rules_unless_asked_not_to(server: LiveServer) -> None:
    resp = http_request(server.port, 'GET', '/__stats')
    assert resp.status == 200, resp
    assert resp.json()['lock_checks'] is CHECKING, f'{server.kind}: {resp}'
