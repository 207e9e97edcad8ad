"""The writer's turn of a connection's output, every state x every move; and
the turn as a real WebSocket transport holds it on a socket that fills up."""

from __future__ import annotations

import pytest

from engineio_wsgi.backends import ThreadingBackend
from engineio_wsgi.options import Options
from engineio_wsgi.output import TABLE, IllegalTransition, Move, Output, step
from engineio_wsgi.packets import Packet, PacketType
from engineio_wsgi.polling_transport import PollingTransport
from engineio_wsgi.session import Session
from engineio_wsgi.websocket_transport import WebSocketTransport
from tests.live import wait_until
from tests.unit.test_rfc6455_wire import open_pair

I, W, C, X = Output.IDLE, Output.WRITING, Output.CLOSING, Output.CLOSED  # noqa: E741
ILLEGAL = 'illegal'

MOVES = [Move.START, Move.DRAINED, Move.CLOSE, Move.END]
EXPECTED = {
    I: [W, ILLEGAL, ILLEGAL, X],
    W: [W, I, C, X],
    C: [C, C, ILLEGAL, X],
    X: [X, X, X, X],
}


def test_the_expectations_cover_every_state_and_move():
    assert set(EXPECTED) == set(Output)
    assert set(MOVES) == set(Move)
    assert set(TABLE) == {(state, move) for state in Output for move in Move}


@pytest.mark.parametrize('state', list(Output))
@pytest.mark.parametrize('move', list(Move))
def test_every_transition(state, move):
    expected = EXPECTED[state][MOVES.index(move)]
    if expected == ILLEGAL:
        with pytest.raises(IllegalTransition) as info:
            step(state, move)
        assert (info.value.state, info.value.move) == (state, move)
    else:
        assert step(state, move) is expected


def test_the_turn_is_held_while_the_socket_is_full_and_given_back_once_the_client_reads(
        small_sockets):
    pair = open_pair(small_sockets)
    options = Options.from_kwargs(ping_interval=60.0, ping_timeout=60.0,
                                  max_queued_packets=10_000)
    session = Session('sid', PollingTransport, ThreadingBackend(), options,
                      on_message=lambda *a: None, on_close=lambda *a: None,
                      on_finished=lambda *a: None)
    session.outbox.clear()
    transport = WebSocketTransport(session, pair.conn, False)
    assert session.switch(transport)
    with session.lock:
        assert transport.output is Output.IDLE
    big = 'x' * 65536
    for _ in range(20):   # far more than the socket takes
        assert session.enqueue(Packet(PacketType.MESSAGE, big))
    with session.lock:
        assert transport.output is Output.WRITING
        queued = len(session.outbox)
    assert queued > 0       # what the socket does not take waits in the session's queue
    for _ in range(20):
        frame = pair.peer.frame()
        assert frame is not None and frame.payload == b'4' + big.encode()

    def idle() -> bool:
        with session.lock:
            return transport.output is Output.IDLE and not session.outbox
    wait_until(idle, message='the turn given back')
    session.end()
