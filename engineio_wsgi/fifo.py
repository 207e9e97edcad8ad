"""A first-in first-out queue that holds no buffer while it is empty.

An empty ``collections.deque`` keeps a block of 64 slots (760 bytes with its
header); an empty list keeps none, and ``clear()`` gives its item array back.
An idle session has several queues with nothing in them, and a worker holds
thousands of idle sessions, so the per-session queues are lists.

For queues that are drained whole (``list(q); q.clear()``, ``b''.join(q)``)
or taken from one item at a time while short: ``popleft`` moves what stays
behind, so a queue that can grow long and is taken from one item at a time
should stay a deque (created when needed). Appending, clearing, ``len`` and
truth are the list's own, atomic as a deque's are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar('T')


class Fifo(list[T]):
    __slots__ = ()

    def popleft(self) -> T:
        """The oldest item; ``IndexError`` when empty, as a deque's."""
        return self.pop(0)

    def appendleft(self, item: T) -> None:
        """Put ``item`` first (what was taken and must go back), as a deque's."""
        self.insert(0, item)

    def extendleft(self, items: Iterable[T]) -> None:
        """Put each of ``items`` first in turn, so they end up reversed, as a deque's."""
        self[0:0] = reversed(list(items))
