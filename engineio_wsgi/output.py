"""A connection's output: who may write, in one table.

The session owns its queue of outgoing packets; the transport that carries
it takes a batch from it only while it holds the writer's turn, and exactly
one holds it at a time. The transport keeps one ``Output`` under the
session's lock and changes it only through ``step``; every question about
writing ("may I write now?", "is the close out?") is a question to it, no
flag elsewhere.

- ``IDLE``: nothing is being written; whoever queues a packet next takes the
  turn (``START`` answers whether it did).
- ``WRITING``: the holder writes batches until the queue is empty, then
  gives the turn back (``DRAINED``). A batch the client does not take at once
  waits on the I/O loop, which hands the turn back to the transport when it
  is out: the turn is held, but no thread waits.
- ``CLOSING``: the batch that ends with the close packet was handed to the
  connection; nothing more is taken.
- ``CLOSED``: the connection is over.

An event that cannot happen in a state (a bug) raises ``IllegalTransition``,
as lifecycle.py's table does.
"""

from __future__ import annotations

import enum


class Output(enum.Enum):
    IDLE = 'idle'
    WRITING = 'writing'
    CLOSING = 'closing'
    CLOSED = 'closed'


class Move(enum.Enum):
    #: packets were queued: the turn is taken if nobody holds it
    START = 'start'
    #: the queue is empty and the last batch is out: the turn is given back
    DRAINED = 'drained'
    #: the batch ending with the close packet went to the connection
    CLOSE = 'close'
    #: the connection ended (the client left, a write failed, the session ended)
    END = 'end'


class IllegalTransition(RuntimeError):
    """A move that cannot happen in the output's current state."""

    def __init__(self, state: Output, move: Move) -> None:
        super().__init__(f'{move.value!r} cannot happen in output state {state.value!r}')
        self.state = state
        self.move = move


_: None = None
O = Output  # noqa: E741 - the table reads as a table
M = Move

#: state x move -> next state (the same state: nothing changes)
TABLE: dict[tuple[Output, Move], Output | None] = {
    (O.IDLE, M.START): O.WRITING,
    (O.IDLE, M.DRAINED): _,
    (O.IDLE, M.CLOSE): _,
    (O.IDLE, M.END): O.CLOSED,

    (O.WRITING, M.START): O.WRITING,     # the holder writes it
    (O.WRITING, M.DRAINED): O.IDLE,
    (O.WRITING, M.CLOSE): O.CLOSING,
    (O.WRITING, M.END): O.CLOSED,

    (O.CLOSING, M.START): O.CLOSING,     # nothing goes after the close packet
    (O.CLOSING, M.DRAINED): O.CLOSING,
    (O.CLOSING, M.CLOSE): _,
    (O.CLOSING, M.END): O.CLOSED,

    (O.CLOSED, M.START): O.CLOSED,
    (O.CLOSED, M.DRAINED): O.CLOSED,     # a turn that ended with the connection
    (O.CLOSED, M.CLOSE): O.CLOSED,
    (O.CLOSED, M.END): O.CLOSED,
}

del O, M, _


def step(state: Output, move: Move) -> Output:
    """The state after ``move``; raises ``IllegalTransition`` if it cannot happen."""
    following = TABLE[state, move]
    if following is None:
        raise IllegalTransition(state, move)
    return following
