"""Where sessions are found by sid.

Kept behind this small interface so that it can later be shared between
worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator

from .session import Session


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    def get(self, sid: str) -> Session | None:
        return self._sessions.get(sid)

    def add(self, session: Session) -> None:
        self._sessions[session.sid] = session

    def remove(self, session: Session) -> None:
        # only this very session: a sid is never reused, but be exact anyway
        if self._sessions.get(session.sid) is session:
            del self._sessions[session.sid]

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))
