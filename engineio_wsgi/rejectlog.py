"""Logging of rejected requests that a hostile client cannot turn into a flood.

Each rejection is logged at DEBUG; at most one WARNING per interval sums up
what was rejected since the last one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

logger = logging.getLogger('engineio_wsgi.server')


class RejectLog:
    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._counts: Counter[str] = Counter()
        self._last = time.monotonic() - interval
        self._lock = threading.Lock()  # never held across anything that blocks

    def rejected(self, what: str, detail: str) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug('rejected: %s (%s)', what, detail)
        now = time.monotonic()
        with self._lock:
            self._counts[what] += 1
            if now - self._last < self.interval:
                return
            self._last = now
            counts, self._counts = self._counts, Counter()
        summary = ', '.join(f'{n} x {w}' for w, n in counts.most_common())
        logger.warning('rejected requests in the last %.0f s: %s', self.interval, summary)
