"""The session's transition table, every state x every event."""

from __future__ import annotations

import pytest

from engineio_wsgi.lifecycle import TABLE, Event, IllegalTransition, State, step

OP, D, C, X, F = State.OPEN, State.DRAINING, State.CLOSING, State.CLOSED, State.FINISHED
ILLEGAL = 'illegal'

#: the rules, written out: rows are states, columns the events in this order
EVENTS = [Event.STOP_INPUT, Event.CLOSE, Event.ABORT, Event.DELIVERED,
          Event.GRACE_EXPIRED, Event.RELEASE]
EXPECTED = {
    OP: [D, C, X, ILLEGAL, ILLEGAL, F],
    D: [D, C, X, ILLEGAL, ILLEGAL, F],
    C: [C, C, C, F, F, F],
    X: [X, X, X, ILLEGAL, ILLEGAL, F],
    F: [F, F, F, F, F, F],
}


def test_the_expectations_cover_every_state_and_event():
    assert set(EXPECTED) == set(State)
    assert set(EVENTS) == set(Event)
    assert set(TABLE) == {(state, event) for state in State for event in Event}


@pytest.mark.parametrize('state', list(State))
@pytest.mark.parametrize('event', list(Event))
def test_every_transition(state, event):
    expected = EXPECTED[state][EVENTS.index(event)]
    if expected == ILLEGAL:
        with pytest.raises(IllegalTransition) as info:
            step(state, event)
        assert (info.value.state, info.value.event) == (state, event)
    else:
        assert step(state, event) is expected


def test_finished_is_final():
    assert all(step(State.FINISHED, event) is State.FINISHED for event in Event)
