"""fifo.Fifo behaves as the collections.deque it stands in for, for the
operations the package uses."""

from __future__ import annotations

import collections

import pytest

from engineio_wsgi.fifo import Fifo


@pytest.mark.parametrize('ops', [
    [('append', 1), ('append', 2), ('popleft',), ('appendleft', 0), ('extend', [3, 4])],
    [('extend', [1, 2, 3]), ('extendleft', [9, 8]), ('popleft',), ('append', 5)],
    [('extendleft', (x for x in 'abc')), ('appendleft', 'z'), ('popleft',), ('popleft',)],
    [('append', 1), ('clear',), ('extendleft', []), ('append', 2)],
])
def test_the_same_as_a_deque(ops: list[tuple]) -> None:
    fifo: Fifo = Fifo()
    deque: collections.deque = collections.deque()
    for name, *args in ops:
        if args and not isinstance(args[0], (list, int, str)):
            args = [list(args[0])]
        got, want = getattr(fifo, name)(*args), getattr(deque, name)(*args)
        assert got == want
        assert list(fifo) == list(deque)
        assert len(fifo) == len(deque) and bool(fifo) == bool(deque)


def test_popleft_of_an_empty_one_raises_index_error_as_a_deque() -> None:
    with pytest.raises(IndexError):
        Fifo().popleft()
