"""Heartbeat over long-polling, from outside, against real servers.

The ``fast_server`` runs the echo app with a ping interval of 0.3 s and a ping
timeout of 0.2 s, so that every rule can be seen within a few seconds. Time
windows are wide enough for a loaded machine but narrow enough to catch a
late sweep (python-engineio style) or a missing ping.
"""

from __future__ import annotations

import time

import pytest

from tests.live import (
    CLOSE,
    MESSAGE,
    NOOP,
    PING,
    PONG,
    LiveServer,
    Packet,
    PollingClient,
    decode_payload,
    expect_error,
)

pytestmark = pytest.mark.timeout(30)

INTERVAL = 0.3
TIMEOUT = 0.2
# how late the server may be, seen from the client (scheduling, HTTP round trips)
LATE = 0.3
POLL_TIMEOUT = 3.0


def types(packets: list[Packet]) -> list[str]:
    return [p.type for p in packets]


def test_open_packet_times_in_whole_milliseconds(fast_client: PollingClient) -> None:
    assert fast_client.open is not None
    assert fast_client.open['pingInterval'] == 300
    assert fast_client.open['pingTimeout'] == 200
    assert type(fast_client.open['pingInterval']) is int and type(fast_client.open['pingTimeout']) is int


def test_first_ping_after_ping_interval(fast_client: PollingClient) -> None:
    packets = fast_client.poll(timeout=POLL_TIMEOUT)
    elapsed = time.monotonic() - fast_client.opened_at
    assert packets == [Packet(PING, '')], packets
    assert INTERVAL - 0.05 <= elapsed <= INTERVAL + LATE, f'first ping after {elapsed:.3f} s'


def test_unsolicited_pong_does_not_move_the_first_ping(fast_client: PollingClient) -> None:
    time.sleep(0.2)         # the scenario: a pong 0.2 s after the open, before any ping
    fast_client.pong()      # nothing outstanding: ignored
    packets = fast_client.poll(timeout=POLL_TIMEOUT)
    elapsed = time.monotonic() - fast_client.opened_at
    assert packets == [Packet(PING, '')], packets
    # a pong that restarted the interval would put the ping at 0.5 s or later
    assert INTERVAL - 0.05 <= elapsed <= INTERVAL + 0.15, f'first ping after {elapsed:.3f} s'


def test_pongs_keep_the_session_alive(fast_client: PollingClient) -> None:
    ping_times = []
    pong_times = []
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        packets = fast_client.poll(timeout=POLL_TIMEOUT)
        assert CLOSE not in types(packets), f'session closed although every ping was answered: {packets}'
        # a poll waits for the next ping (0.3 s after the pong), never longer
        assert types(packets) == [PING], packets
        ping_times.append(time.monotonic())
        fast_client.pong()
        pong_times.append(time.monotonic())
    # about 2.0 / 0.3 pings; fewer means the server stopped pinging or pings late
    assert len(ping_times) >= 4, f'{len(ping_times)} pings in 2 s'
    # each ping comes about pingInterval after the previous pong
    gaps = [ping - pong for pong, ping in zip(pong_times, ping_times[1:], strict=False)]
    assert all(INTERVAL - 0.1 <= g <= INTERVAL + LATE for g in gaps), f'pong -> ping gaps {gaps}'
    fast_client.send('still alive')
    assert fast_client.receive(1) == ['still alive']


def test_silent_client_times_out(fast_server: LiveServer) -> None:
    c = PollingClient(fast_server)
    c.handshake()
    time.sleep(INTERVAL + TIMEOUT + LATE)   # the scenario: a client silent past the deadline
    expect_error(c.get(timeout=POLL_TIMEOUT), 400, 1)
    expect_error(c.post(Packet.message('late')), 400, 1)
    c.expect_reason('ping timeout')


def test_timeout_reported_to_the_app(fast_server: LiveServer) -> None:
    c = PollingClient(fast_server)
    c.handshake()
    c.expect_reason('ping timeout', timeout=INTERVAL + TIMEOUT + 2.0)


def test_pending_get_receives_close_at_ping_timeout(fast_client: PollingClient) -> None:
    packets = fast_client.poll(timeout=POLL_TIMEOUT)
    assert types(packets) == [PING], packets
    # no pong: the pending GET must end with a close packet at the ping timeout
    resp = fast_client.get(timeout=POLL_TIMEOUT)
    elapsed = time.monotonic() - fast_client.opened_at
    assert resp.status == 200, resp
    got = types(decode_payload(resp.body))
    assert got and got[-1] == CLOSE and set(got) <= {CLOSE, NOOP}, resp
    assert INTERVAL + TIMEOUT - 0.1 <= elapsed <= INTERVAL + TIMEOUT + LATE, f'closed after {elapsed:.3f} s'
    expect_error(fast_client.get(timeout=POLL_TIMEOUT), 400, 1)
    fast_client.expect_reason('ping timeout')


def test_late_pong_does_not_save_the_session(fast_client: PollingClient) -> None:
    packets = fast_client.poll(timeout=POLL_TIMEOUT)
    assert types(packets) == [PING], packets
    time.sleep(TIMEOUT + LATE)      # the scenario: the pong comes after the ping timeout
    resp = fast_client.post(Packet(PONG))
    expect_error(resp, 400, 1)


def test_close_packet_of_a_server_disconnect_is_dropped_after_timeout(fast_server: LiveServer) -> None:
    """disconnect(): the close packet waits for the next GET for pingInterval + pingTimeout at most."""
    c = PollingClient(fast_server)
    c.handshake()
    c.post_ok(Packet.message('__disconnect'))
    assert fast_server.wait_for_log(f'echo: disconnect {c.sid}', timeout=2.0)
    time.sleep(INTERVAL + TIMEOUT + LATE)   # the scenario: the client polls only after the deadline
    expect_error(c.get(timeout=POLL_TIMEOUT), 400, 1)


def test_blocking_handler_does_not_time_out_its_own_session(fast_client: PollingClient) -> None:
    """Pongs are handled on the I/O path, not queued behind the busy handler."""
    fast_client.send('__block 2')
    started = time.monotonic()
    messages = []
    pings = 0
    deadline = started + 8.0
    while 'unblocked' not in messages:
        assert time.monotonic() < deadline, 'no "unblocked" within 8 s'
        for p in fast_client.poll(timeout=POLL_TIMEOUT):
            assert p.type != CLOSE, f'session closed while its handler was blocked ({pings} pings answered)'
            if p.type == PING:
                pings += 1
                fast_client.pong()
            elif p.type == MESSAGE:
                messages.append(p.data)
    assert messages == ['unblocked']
    assert time.monotonic() - started >= 1.9
    assert pings >= 4, f'only {pings} pings while the handler was blocked'
    fast_client.send('after block')
    assert fast_client.receive(1) == ['after block']
