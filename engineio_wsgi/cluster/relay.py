"""WebSocket requests for another node's session."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import BadRequest
from ..response import StartResponse

if TYPE_CHECKING:
    from ..request import Request
    from .link import ClusterLink


def serve(link: ClusterLink, request: Request, start_response: StartResponse,
          owner: str) -> Iterable[bytes]:
    raise BadRequest('WebSocket for a session of another process')
