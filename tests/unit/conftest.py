"""Fixtures shared by the unit tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def small_sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair (server end, client end) with small buffers: a few
    hundred kB fill them, so that a write the socket does not take shows."""
    server, client = socket.socketpair()
    for sock in (server, client):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    client.settimeout(10)
    yield server, client
    server.close()
    client.close()
