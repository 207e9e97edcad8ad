"""This process's node id.

The node id is the process tag every sid of this process starts with
(``engineio_wsgi.sids``): any process finds the owner of a session from its
sid, without a lookup. It is drawn when a process first needs it and drawn
anew in every forked child (``os.register_at_fork``), so it survives
gunicorn's ``--preload`` (the master imports the application, the workers
draw their own), ``max_requests`` restarts and ``HUP`` reloads (new worker
processes, new ids).
"""

from __future__ import annotations

from .. import sids

TAG_LENGTH = sids.TAG_LENGTH


def node_id() -> str:
    return sids.process_tag()


def owner_of(sid: str) -> str | None:
    """The node id a sid names, or None for a sid of another shape."""
    return sid[:TAG_LENGTH] if sids.has_shape(sid) else None
