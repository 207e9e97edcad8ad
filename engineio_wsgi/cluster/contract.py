"""What the parts of a cluster link (owner.py, forward.py, relay.py) use of it.

``ClusterLink`` (link.py) is the one implementation; the parts see it through
this Protocol so that none of them imports the module that imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..backends import Backend
    from ..options import Options
    from ..reasons import Reason
    from ..registry import SessionRegistry
    from . import wire


class Link(Protocol):
    options: Options
    sessions: SessionRegistry

    def backend(self) -> Backend: ...

    def lock(self, name: str) -> Any:
        """A lock of this process (made after fork), shared by name."""

    def call(self, owner: str, message: wire.Message,
             peer_gone: Callable[[], bool] | None = None) -> wire.Message:
        """Send a request to the owner and wait for its answer (bounded)."""

    def publish(self, target: str, message: wire.Message) -> bool: ...

    def publish_quietly(self, target: str, message: wire.Message) -> bool: ...

    def listening(self, owner: str) -> bool: ...

    def open_relay(self) -> tuple[int, Any]: ...

    def close_relay(self, rid: int) -> None: ...

    def close_remote(self, owner: str, sid: str, reason: Reason) -> None: ...
