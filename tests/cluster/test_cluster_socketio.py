"""python-socketio with ``socketio.RedisManager`` on the clustered engine
(tests/apps/cluster_sio.py), behind round-robin nginx in both layouts: rooms
and broadcasts reach clients whose sessions different processes own, whatever
transport they use."""

from __future__ import annotations

import queue
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import socketio

from tests.cluster.topology import LAYOUTS, Cluster, no_tracebacks, owner, running_cluster

pytestmark = pytest.mark.timeout(180)

APP = 'tests.apps.cluster_sio:app'
#: the clients' transport settings, in turn; rooms cut across them
TRANSPORTS = [['polling'], ['websocket'], None]
#: clients per process at least (more are opened until each process has them)
PER_PROCESS = 2


class SioClient:
    def __init__(self, url: str, transports: list[str] | None) -> None:
        self.transports = transports
        self.client = socketio.Client(reconnection=False)
        self.got: dict[str, queue.Queue[Any]] = {'room_msg': queue.Queue(),
                                                 'all_msg': queue.Queue()}
        for event, box in self.got.items():
            self.client.on(event, box.put)
        self.client.connect(url, transports=transports, wait_timeout=15)
        self.node = self.call('whoami')

    @property
    def engine_sid(self) -> str:
        return self.client.eio.sid

    def call(self, event: str, *args: Any) -> Any:
        # python-socketio sends a tuple as several arguments
        data = None if not args else args if len(args) > 1 else args[0]
        return self.client.call(event, data, timeout=15)

    def next(self, event: str, timeout: float = 10.0) -> Any:
        try:
            return self.got[event].get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f'no {event} within {timeout} s') from None


@pytest.fixture(scope='module', params=list(LAYOUTS))
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with running_cluster(request.param, app=APP) as running:
        yield running
        no_tracebacks(running)


@pytest.fixture(scope='module')
def clients(cluster: Cluster) -> Iterator[list[SioClient]]:
    """Clients until every process owns PER_PROCESS of them (which process
    gets a handshake depends on how many requests came before it), sorted by
    owner."""
    made: list[SioClient] = []
    try:
        def owners_full() -> bool:
            counts = {node: 0 for node in cluster.nodes}
            for c in made:
                counts[c.node] += 1
            return min(counts.values()) >= PER_PROCESS
        while not owners_full():
            assert len(made) < 40, f'handshakes reached only {sorted({c.node for c in made})}'
            made.append(SioClient(cluster.url, TRANSPORTS[len(made) % len(TRANSPORTS)]))
            if sum(c.node == made[-1].node for c in made) > PER_PROCESS:
                # clients of one kind make the same number of requests, so round
                # robin can keep handing handshakes to the same process: one plain
                # request moves the turn on
                with urllib.request.urlopen(f'{cluster.url}/__node', timeout=5) as answer:
                    answer.read()
        yield sorted(made, key=lambda c: c.node)
    finally:
        for c in made:
            c.client.disconnect()


def test_each_session_runs_on_the_owner_its_sid_names(cluster: Cluster,
                                                      clients: list[SioClient]) -> None:
    for c in clients:
        assert c.node == owner(c.engine_sid)
        assert c.call('echo', 'héllo', 2) == ('héllo', 2)
    assert {c.node for c in clients} == set(cluster.nodes)


def test_room_and_broadcast_reach_every_owner(cluster: Cluster, clients: list[SioClient]) -> None:
    rooms = {}
    for i, c in enumerate(clients):     # sorted by owner: both rooms on every owner
        room = 'even' if i % 2 == 0 else 'odd'
        rooms[c] = room
        assert c.call('join', room) == c.node
    even = [c for c in clients if rooms[c] == 'even']
    odd = [c for c in clients if rooms[c] == 'odd']
    assert {c.node for c in even} == {c.node for c in odd} == set(cluster.nodes)
    polling = next(c for c in clients if c.transports == ['polling'])
    ws = next(c for c in clients if c.transports == ['websocket'])
    for sender in (ws, polling):
        text = f'to the even room from {sender.node}'
        assert sender.call('to_room', 'even', text) == 'sent'
        for c in even:
            assert c.next('room_msg') == text
        everyone = f'to all from {sender.node} ✓'
        assert sender.call('to_all', everyone) == 'sent'
        for c in clients:
            assert c.next('all_msg') == everyone
        # one sender, one process: the room message would have come first
        for c in odd:
            assert c.got['room_msg'].empty(), c.got['room_msg'].get()


def test_many_emits_to_a_room_arrive_in_order(clients: list[SioClient]) -> None:
    """One process emits 50 times to a room (each emit done before the next:
    python-socketio runs every event's handler in a task of its own, so only
    acked events are in order): every member gets them in that order."""
    sender = clients[0]
    for c in clients:
        c.call('join', 'all-of-us')
    for i in range(50):
        assert sender.call('to_room', 'all-of-us', i) == 'sent'
    deadline = time.monotonic() + 20
    for c in clients:
        got = [c.next('room_msg', timeout=max(0.1, deadline - time.monotonic())) for _ in range(50)]
        assert got == list(range(50))
