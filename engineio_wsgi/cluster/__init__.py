"""The scale-out on Redis: ``Server(cluster=...)`` and ``Emitter``.

Nothing outside this package imports it unless ``cluster=`` is given: a
server without it imports neither this package nor redis-py. Importing the
package imports no redis-py either; connecting does.

* ``connect``: a redis-py client from a ``cluster=`` value.
* ``node``: this process's node id (the tag its sids start with).
* ``inbox``: messages to one node, in order per sender, refused at once when
  the node is gone.
* ``wire``: what the processes tell each other.
* ``link``: one ``Server``'s place in the cluster (serving requests for
  other processes' sessions, sends to them, the inbox's dispatch).
* ``owner``: what a process does for its own sessions' requests served by
  other processes.
* ``relay``: WebSocket connections for other processes' sessions.
* ``emitter``: ``Emitter``, write-only, for processes that serve nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ['ClusterUnavailable', 'Emitter']


def __getattr__(name: str) -> Any:
    # lazily, so that importing the package stays cheap
    if name == 'Emitter':
        from .emitter import Emitter
        return Emitter
    if name == 'ClusterUnavailable':
        from .inbox import ClusterUnavailable
        return ClusterUnavailable
    raise AttributeError(name)
