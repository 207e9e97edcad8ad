from engineio_wsgi.heartbeat import Due, Heartbeat


def test_first_ping_is_due_one_interval_after_open():
    hb = Heartbeat(opened_at=100.0, interval=25.0, timeout=20.0)
    assert hb.due(124.999) is None
    assert hb.due(125.0) is Due.PING
    assert hb.awaiting_pong


def test_timeout_deadline_is_anchored_to_when_the_ping_was_due():
    hb = Heartbeat(opened_at=0.0, interval=1.0, timeout=0.5)
    # the loop woke up late: the ping goes out at 1.3, but the deadline stays 1.5
    assert hb.due(1.3) is Due.PING
    assert hb.deadline == 1.5
    assert hb.due(1.49) is None
    assert hb.due(1.5) is Due.TIMEOUT


def test_pong_schedules_the_next_ping_one_interval_after_it():
    hb = Heartbeat(opened_at=0.0, interval=1.0, timeout=0.5)
    assert hb.due(1.0) is Due.PING
    assert hb.pong(1.2) is True
    assert not hb.awaiting_pong
    assert hb.deadline == 2.2
    assert hb.due(2.1) is None
    assert hb.due(2.2) is Due.PING


def test_unsolicited_pong_changes_nothing():
    hb = Heartbeat(opened_at=0.0, interval=1.0, timeout=0.5)
    assert hb.pong(0.5) is False
    assert hb.deadline == 1.0


def test_late_is_past_the_pong_deadline_whether_or_not_the_ping_went_out():
    beat = Heartbeat(0.0, 1.0, 0.5)
    assert not beat.late(1.49)        # the ping is due at 1.0, nobody looked yet
    assert beat.late(1.5)             # its pong could not have come in time
    assert beat.due(1.0) is Due.PING  # the ping goes out on time
    assert not beat.late(1.49) and beat.late(1.5)
    assert beat.pong(1.2)
    assert not beat.late(2.6) and beat.late(2.7)   # next ping at 2.2, pong by 2.7
