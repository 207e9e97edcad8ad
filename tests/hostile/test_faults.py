"""Faults: clients that vanish or stop reading, handlers that raise or block, a
worker killed with SIGKILL, and many sessions that must leave nothing behind.

Runs on the 'faults' config (ping 0.5 s / 0.5 s, 500 packets queued per
session at most), so the heartbeat finds a vanished client within about 1 s.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time

import pytest
import websocket

from tests.hostile.tools import (
    Bystanders,
    PollingBystander,
    RawWebSocket,
    WebSocketBystander,
    expect_message,
    open_websocket,
    reset,
    stats,
    traceback_free,
)
from tests.integration.conftest import CONFIGS
from tests.live import (
    Background,
    LiveServer,
    PollingClient,
    RawRequest,
    disconnect_reasons,
    expect_error,
    start_server,
    wait_for_session,
    wait_until,
)


def reason_of(server: LiveServer, sid: str, timeout: float = 5.0) -> str:
    reasons = wait_until(lambda: disconnect_reasons(server, sid), timeout,
                         message=f'disconnect of {sid}')
    assert len(reasons) == 1, reasons
    return reasons[0]


def raw_session(server: LiveServer, rcvbuf: int | None = None) -> tuple[RawWebSocket, str]:
    raw = RawWebSocket(server.port, rcvbuf=rcvbuf)
    assert raw.status == 101, raw.head
    frame = raw.read_frame()
    assert frame and frame[1].startswith(b'0'), frame
    return raw, json.loads(frame[1][1:])['sid']


# -- clients that vanish -----------------------------------------------------

def test_client_vanishing_mid_poll(fault_bystanders: Bystanders, faults_server):
    c = PollingClient(faults_server)
    c.handshake()
    req = RawRequest(faults_server.port, 'GET', c.target())   # a long-poll, pending
    wait_for_session(faults_server, c.sid, get_waiting=True)
    reset(req.sock)                                           # gone: RST, no FIN
    assert reason_of(faults_server, c.sid, timeout=4) == 'ping timeout'
    expect_error(c.get(), 400, 1)
    fault_bystanders.check()


def test_client_going_silent_on_websocket(fault_bystanders: Bystanders, faults_server):
    raw, sid = raw_session(faults_server)        # open, then never reads or answers
    assert reason_of(faults_server, sid, timeout=4) == 'ping timeout'
    raw.close()
    fault_bystanders.check()


def test_client_vanishing_mid_websocket(fault_bystanders: Bystanders, faults_server):
    raw, sid = raw_session(faults_server)
    reset(raw.sock)
    # the reader waiting on the socket sees the reset at once: the peer closed the connection
    assert reason_of(faults_server, sid, timeout=4) == 'transport close'
    fault_bystanders.check()


# -- clients that stop reading while the application sends ------------------

class Counter:
    """A WebSocket session whose reader counts messages (pings answered)."""

    def __init__(self, server: LiveServer) -> None:
        self.session = WebSocketBystander(server)
        self.sid = self.session.sid

    def count_until(self, wanted: int, done: str | None, timeout: float) -> float:
        """Seconds until ``wanted`` messages (and ``done``, if given) arrived."""
        started = time.monotonic()
        got = 0
        seen_done = done is None
        while got < wanted or not seen_done:
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                raise AssertionError(f'{self.sid}: {got} of {wanted} messages in {timeout} s '
                                     f'(done seen: {seen_done}; closed: {self.session.closed})')
            try:
                message = self.session.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if message == done:
                seen_done = True
            else:
                got += 1
        return time.monotonic() - started


def test_websocket_client_that_stops_reading_blocks_nobody(slow_reader_server):
    server = slow_reader_server
    bystanders = Bystanders(server)
    try:
        before = stats(server)['rss_kb']
        stuck, stuck_sid = raw_session(server, rcvbuf=4096)     # never reads again
        later = Counter(server)                                  # served after it
        sender = Counter(server)
        # 1,000 messages of 16 kB to the stuck one: far more than the socket
        # buffers hold, and more than the 500 packets a session may have queued;
        # then 400 to a client that reads (a burst within the limit)
        started = time.monotonic()
        sender.session.send(f'__sendto 1000 16384 {stuck_sid}')
        sender.session.send(f'__sendto 400 16384 {later.sid}')
        first = later.count_until(1, None, timeout=30)
        rest = later.count_until(399, None, timeout=30)
        sender.count_until(0, 'sendto done', timeout=30)
        sender.count_until(0, 'sendto done', timeout=30)
        assert first < 1.0, (f'a session that does not read held up the sending thread '
                             f'for {first:.1f} s')
        assert reason_of(server, stuck_sid, timeout=10) == 'send buffer full'
        assert time.monotonic() - started < first + rest + 1
        assert stats(server)['rss_kb'] - before < 150_000
        stuck.close()
        later.session.stop()
        sender.session.stop()
        bystanders.check()
    finally:
        bystanders.stop()


def test_polling_client_that_stops_polling_blocks_nobody(fault_bystanders: Bystanders,
                                                         faults_server):
    idle = PollingClient(faults_server)
    idle.handshake()                                    # never polls again
    later = Counter(faults_server)
    sender = Counter(faults_server)
    # 700 to the client that does not poll (over its 500-packet limit), then
    # a burst within the limit to one that reads
    sender.session.send(f'__sendto 700 1000 {idle.sid}')
    sender.session.send(f'__sendto 400 1000 {later.sid}')
    took = later.count_until(400, None, timeout=20)
    sender.count_until(0, 'sendto done', timeout=20)
    sender.count_until(0, 'sendto done', timeout=20)
    assert took < 3.0, f'a client that does not poll held up the others for {took:.1f} s'
    assert reason_of(faults_server, idle.sid, timeout=5) == 'send buffer full'
    expect_error(idle.get(), 400, 1)
    later.session.stop()
    sender.session.stop()
    fault_bystanders.check()


@pytest.mark.parametrize('transport', ['polling', 'websocket'])
def test_own_flood_to_a_client_that_does_not_read(fault_bystanders: Bystanders, faults_server,
                                                  transport):
    """A client that keeps its heartbeat (pongs sent blindly) but reads nothing:
    the outgoing limit ends its session, not the heartbeat."""
    stop = threading.Event()
    if transport == 'polling':
        c = PollingClient(faults_server)
        c.handshake()
        c.send('__send 2000')
        sid = c.sid
    else:
        raw, sid = raw_session(faults_server, rcvbuf=4096)

        def pong_blindly() -> None:
            # the scenario: a pong every 0.1 s (ping interval 0.5 s), never a read
            while not stop.wait(0.1):
                raw.send_text('3')
        threading.Thread(target=pong_blindly, daemon=True).start()
        # 32 MB: the socket buffers fill and the sender waits (a tight loop of
        # small sends would only measure the handler hogging a gevent worker)
        raw.send_text(f'4__sendto 2000 16384 {sid}')
    try:
        assert reason_of(faults_server, sid, timeout=10) == 'send buffer full'
    finally:
        stop.set()
        if transport == 'websocket':
            raw.close()
    fault_bystanders.check()


# -- handlers that raise or block -------------------------------------------

def test_handler_that_raises(fault_bystanders: Bystanders, faults_server):
    for session in (PollingBystander(faults_server), WebSocketBystander(faults_server)):
        session.send('__raise')
        session.send('after')
        expect_message(session.messages, 'after', 5)
        assert session.closed is None, session.closed
        assert not disconnect_reasons(faults_server, session.sid)
        session.stop()
    fault_bystanders.check(allow_tracebacks=('__raise: the echo app raises on purpose',))


@pytest.mark.parametrize('transport', ['polling', 'websocket'])
def test_handler_that_blocks_for_seconds(fault_bystanders: Bystanders, faults_server, transport):
    session = (PollingBystander if transport == 'polling' else WebSocketBystander)(faults_server)
    session.send('__block 2.5')
    started = time.monotonic()
    # meanwhile the others are served, promptly
    fault_bystanders.check(timeout=1.0)
    assert time.monotonic() - started < 2.0
    # its own heartbeat went on (ping interval 0.5 s): still open, then unblocked
    expect_message(session.messages, 'unblocked', 5)
    assert session.closed is None, session.closed
    assert not disconnect_reasons(faults_server, session.sid)
    session.send('after')
    expect_message(session.messages, 'after', 3)
    session.stop()


# -- a worker killed ---------------------------------------------------------

def _children(pid: int) -> list[int]:
    try:
        with open(f'/proc/{pid}/task/{pid}/children', encoding='ascii') as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize('worker', ['gunicorn-gevent', 'gunicorn-gthread'])
def test_worker_killed_with_sigkill(worker):
    env = {**CONFIGS['faults'], 'EIO_LOG_LEVEL': 'INFO'}
    with start_server(worker, env=env) as server:
        old = wait_until(lambda: _children(server.proc.pid), 10, message='worker pid')[0]
        ws, _ = open_websocket(server)
        poller = PollingClient(server)
        poller.handshake()
        pending = Background(poller.get, timeout=10)
        wait_for_session(server, poller.sid, get_waiting=True)
        os.kill(old, signal.SIGKILL)
        # the WebSocket client sees its connection end
        ws.settimeout(5)
        ended = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not ended:
            try:
                opcode, _ = ws.recv_data(control_frame=True)
                ended = opcode == websocket.ABNF.OPCODE_CLOSE
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                ended = True
        assert ended, 'the WebSocket stayed open after its worker died'
        # so does the pending long-poll: its connection ends without an answer
        with pytest.raises(ConnectionError):
            pending.result(8)
        # a new worker serves new sessions; the old sid is unknown to it
        new = wait_until(lambda: [p for p in _children(server.proc.pid) if p != old], 20,
                         message='respawned worker')[0]
        assert new != old

        def fresh_handshake() -> bool:
            try:
                c = PollingClient(server, timeout=3)
                c.handshake()
            except (OSError, AssertionError):
                return False
            c.send('reborn')
            assert c.receive(1) == ['reborn']
            c.close()
            return True
        wait_until(fresh_handshake, 20, interval=0.2, message='a handshake on the new worker')
        expect_error(poller.get(), 400, 1)
        ws2, _ = open_websocket(server)
        ws2.send('4ws reborn')
        assert ws2.recv() == '4ws reborn'
        ws2.close(timeout=0.5)
        traceback_free(server)


# -- nothing left behind -------------------------------------------------------

def _ws_cycles(server: LiveServer, count: int, threads: int = 10) -> None:
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            for _ in range(n):
                ws, _ = open_websocket(server)
                ws.send('4x')
                assert ws.recv() == '4x'
                ws.send('1')
                ws.close(timeout=1)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
    workers = [threading.Thread(target=run, args=(count // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not errors, errors[:3]


def _settled(server: LiveServer, base: dict[str, int] | None, slack: int = 2,
             timeout: float = 20.0) -> dict[str, int]:
    """Stats once sessions are back to the bystanders' two and, with ``base``,
    threads and greenlets are back to it (within ``slack``)."""
    def ok() -> dict[str, int] | None:
        s = stats(server)
        # gunicorn gthread's own pool (--threads) grows to its size and stays
        s['threads'] -= sum(n for name, n in s['thread_names'].items()
                            if name.startswith('ThreadPoolExecutor'))
        if s['sessions'] > 2:
            return None
        if base is not None and (s['threads'] > base['threads'] + slack
                                 or s['greenlets'] > base['greenlets'] + slack):
            return None
        return s
    try:
        return wait_until(ok, timeout, interval=0.2, message='settled')
    except AssertionError:
        raise AssertionError(f'{server.kind}: left behind: now {stats(server)}, before {base}')


def test_a_thousand_websocket_sessions_leave_nothing_behind(fault_bystanders: Bystanders,
                                                            faults_server):
    _ws_cycles(faults_server, 100)                       # warm up
    base = _settled(faults_server, None)
    _ws_cycles(faults_server, 1000)
    after = _settled(faults_server, base)
    assert after['sessions'] <= 2
    fault_bystanders.check()
