"""A session's life: every state change it may go through, in one table.

The session holds one ``State`` and changes it only through ``step``, under
its lock. An event that cannot happen in a state (a bug, not a client's
doing) raises ``IllegalTransition``; an event that can arrive late, after
another one decided the session's fate (two closes racing), leaves the state
as it is and the caller sees that nothing changed.

What is not here on purpose: how bytes move (a waiting GET, a WebSocket
write under way) is the transport's own state, and the order of the
application's callbacks is the dispatcher's.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    OPEN = 'open'
    #: still sending, no longer taking client input: ends once the messages
    #: received so far were handled (a parse error)
    DRAINING = 'draining'
    #: ended for the application; its close packet is not delivered yet
    CLOSING = 'closing'
    #: ended; nothing more is delivered; its resources are being released
    CLOSED = 'closed'
    #: released for good
    FINISHED = 'finished'


class Event(enum.Enum):
    #: no more client input; close once what was received is handled
    STOP_INPUT = 'stop input'
    #: end, with a close packet the transport can still deliver
    CLOSE = 'close'
    #: end, with nothing more sent (the transport is broken or the client left)
    ABORT = 'abort'
    #: the transport delivered the close packet
    DELIVERED = 'delivered'
    #: the close packet was not fetched in time
    GRACE_EXPIRED = 'grace expired'
    #: let go of everything, whatever the state (shutdown, a failed transport)
    RELEASE = 'release'


class IllegalTransition(RuntimeError):
    """An event that cannot happen in the session's current state."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f'{event.value!r} cannot happen in state {state.value!r}')
        self.state = state
        self.event = event


_: None = None     # an illegal event, spelled out in the table
S = State
E = Event

#: state x event -> next state (the same state: the event changes nothing)
TABLE: dict[tuple[State, Event], State | None] = {
    (S.OPEN, E.STOP_INPUT): S.DRAINING,
    (S.OPEN, E.CLOSE): S.CLOSING,
    (S.OPEN, E.ABORT): S.CLOSED,
    (S.OPEN, E.DELIVERED): _,
    (S.OPEN, E.GRACE_EXPIRED): _,
    (S.OPEN, E.RELEASE): S.FINISHED,

    (S.DRAINING, E.STOP_INPUT): S.DRAINING,
    (S.DRAINING, E.CLOSE): S.CLOSING,
    (S.DRAINING, E.ABORT): S.CLOSED,
    (S.DRAINING, E.DELIVERED): _,
    (S.DRAINING, E.GRACE_EXPIRED): _,
    (S.DRAINING, E.RELEASE): S.FINISHED,

    (S.CLOSING, E.STOP_INPUT): S.CLOSING,
    (S.CLOSING, E.CLOSE): S.CLOSING,
    (S.CLOSING, E.ABORT): S.CLOSING,
    (S.CLOSING, E.DELIVERED): S.FINISHED,
    (S.CLOSING, E.GRACE_EXPIRED): S.FINISHED,
    (S.CLOSING, E.RELEASE): S.FINISHED,

    (S.CLOSED, E.STOP_INPUT): S.CLOSED,
    (S.CLOSED, E.CLOSE): S.CLOSED,
    (S.CLOSED, E.ABORT): S.CLOSED,
    (S.CLOSED, E.DELIVERED): _,
    (S.CLOSED, E.GRACE_EXPIRED): _,
    (S.CLOSED, E.RELEASE): S.FINISHED,

    (S.FINISHED, E.STOP_INPUT): S.FINISHED,
    (S.FINISHED, E.CLOSE): S.FINISHED,
    (S.FINISHED, E.ABORT): S.FINISHED,
    # a writer or a GET that delivered the close packet while shutdown
    # released the session: it is gone already
    (S.FINISHED, E.DELIVERED): S.FINISHED,
    (S.FINISHED, E.GRACE_EXPIRED): S.FINISHED,
    (S.FINISHED, E.RELEASE): S.FINISHED,
}

del S, E, _

#: states in which the session is open for the application
OPEN_STATES = frozenset({State.OPEN, State.DRAINING})
#: states in which nothing more is delivered
ENDED_STATES = frozenset({State.CLOSED, State.FINISHED})


def step(state: State, event: Event) -> State:
    """The state after ``event``; raises ``IllegalTransition`` if it cannot happen."""
    following = TABLE[state, event]
    if following is None:
        raise IllegalTransition(state, event)
    return following
