"""``logger=<logging.Logger>``: the library's records go to that logger.

As in python-engineio, the given logger's level decides what is logged and its
handlers (and, if it propagates, its parents') receive the records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from engineio_wsgi import logs

from .engines import HANDSHAKE, OURS, PYEIO, make_server, open_sid, running


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def mentioning(self, text: str) -> list[str]:
        return [r.getMessage() for r in self.records if text in r.getMessage()]


@pytest.fixture
def app_logger() -> Iterator[tuple[logging.Logger, Capture, Capture]]:
    """A logger of the application's own (not propagating), and a handler on root."""
    logger = logging.getLogger('parity.app')
    logger.propagate = False
    mine, root = Capture(), Capture()
    logger.addHandler(mine)
    logging.getLogger().addHandler(root)
    try:
        yield logger, mine, root
    finally:
        logger.removeHandler(mine)
        logging.getLogger().removeHandler(root)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logs.use_logger(None)


def handshake_and_close(engine: str, mine: Capture, root: Capture,
                        **options: object) -> tuple[int, int]:
    """How many records naming the session reached the given logger, and root."""
    mine.records.clear()
    root.records.clear()
    with running(engine, **options) as (_, app):
        sid = open_sid(app.get(HANDSHAKE))
        app.post(HANDSHAKE + '&sid=' + sid, b'1', content_type='text/plain')
    return len(mine.mentioning(sid)), len(root.mentioning(sid))


def seen(counts: tuple[int, int]) -> tuple[bool, bool]:
    return counts[0] > 0, counts[1] > 0


def test_records_go_to_the_given_logger_at_its_level(app_logger):
    logger, mine, root = app_logger
    logger.setLevel(logging.INFO)
    found = {engine: seen(handshake_and_close(engine, mine, root, logger=logger))
             for engine in (PYEIO, OURS)}
    assert found == {PYEIO: (True, False), OURS: (True, False)}


def test_the_given_loggers_level_filters(app_logger):
    logger, mine, root = app_logger
    logger.setLevel(logging.ERROR)
    found = {engine: seen(handshake_and_close(engine, mine, root, logger=logger))
             for engine in (PYEIO, OURS)}
    assert found == {PYEIO: (False, False), OURS: (False, False)}


def test_records_reach_the_given_loggers_parents_once_when_it_propagates(app_logger):
    logger, mine, root = app_logger
    logger.setLevel(logging.INFO)
    logger.propagate = True
    counts = {engine: handshake_and_close(engine, mine, root, logger=logger)
              for engine in (PYEIO, OURS)}
    assert {engine: seen(c) for engine, c in counts.items()} == {
        PYEIO: (True, True), OURS: (True, True)}
    # each record once: not through the library's own loggers as well
    assert counts[OURS][0] == counts[OURS][1]


def test_a_level_changed_later_is_followed(app_logger):
    logger, mine, _ = app_logger
    logger.setLevel(logging.ERROR)
    with running(OURS, logger=logger) as (_, app):
        first = open_sid(app.get(HANDSHAKE))
        while_error = mine.mentioning(first)
        logger.setLevel(logging.INFO)
        second = open_sid(app.get(HANDSHAKE))
        assert while_error == [] and mine.mentioning(second)


def test_without_a_logger_records_stay_in_the_engineio_wsgi_hierarchy(app_logger):
    _, mine, root = app_logger
    library = logging.getLogger('engineio_wsgi')
    library.setLevel(logging.INFO)
    try:
        assert seen(handshake_and_close(OURS, mine, root)) == (False, True)
        assert seen(handshake_and_close(OURS, mine, root, logger=False)) == (False, True)
    finally:
        library.setLevel(logging.NOTSET)


@pytest.mark.parametrize('value', ['engineio', None, 1])
def test_only_a_logger_or_a_bool_is_accepted(value):
    with pytest.raises(TypeError, match='logger'):
        make_server(OURS, logger=value)


def test_a_logger_inside_the_librarys_own_hierarchy_is_refused(app_logger):
    with pytest.raises(ValueError, match='inside the engineio_wsgi hierarchy'):
        make_server(OURS, logger=logging.getLogger('engineio_wsgi.mine'))
    # the library's own top logger is the default: nothing changes
    assert make_server(OURS, logger=logging.getLogger('engineio_wsgi')).logger.name == \
        'engineio_wsgi'
