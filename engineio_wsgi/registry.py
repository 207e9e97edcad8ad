"""Where sessions are found by sid.

Kept behind this small interface so that it can later be shared between
worker processes.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterator

from .session import Session


class Refusal(enum.Enum):
    """Which limit refused a new session."""

    TOTAL = 'total'
    CLIENT = 'client'


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._per_client: dict[str, int] = {}
        self._lock = threading.Lock()  # held for dict updates only

    def get(self, sid: str) -> Session | None:
        return self._sessions.get(sid)

    def add(self, session: Session, max_total: int | None = None,
            max_per_client: int | None = None) -> Refusal | None:
        """Register; returns which limit refused it, or None."""
        client = session.client
        with self._lock:
            if max_total is not None and len(self._sessions) >= max_total:
                return Refusal.TOTAL
            count = self._per_client.get(client, 0)
            if max_per_client is not None and count >= max_per_client:
                return Refusal.CLIENT
            self._sessions[session.sid] = session
            self._per_client[client] = count + 1
        return None

    def remove(self, session: Session) -> None:
        with self._lock:
            # only this very session: a sid is never reused, but be exact anyway
            if self._sessions.get(session.sid) is not session:
                return
            del self._sessions[session.sid]
            left = self._per_client[session.client] - 1
            if left:
                self._per_client[session.client] = left
            else:
                del self._per_client[session.client]

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))
