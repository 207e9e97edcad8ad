"""Session ids that name the process that issued them.

A sid is 20 URL-safe characters, as before and as other Engine.IO servers
make them: a 4-character tag of the issuing process followed by 16 random
characters (96 random bits, what python-engineio's sids carry). The tag is
drawn when a process first needs it and drawn anew in a forked child, so every
worker process, and every restart of one, has its own: a process can tell a
sid it issued itself (and has since ended) from one issued by another process.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import threading

TAG_LENGTH = 4
SID_LENGTH = 20
_SHAPE = re.compile(rf'[A-Za-z0-9_-]{{{SID_LENGTH}}}\Z')

_tag: str | None = None
_lock = threading.Lock()


def _urlsafe(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode('ascii').rstrip('=')


def process_tag() -> str:
    """This process's tag, drawn at its first use (after any fork)."""
    global _tag
    tag = _tag
    if tag is None:
        with _lock:
            if _tag is None:
                _tag = _urlsafe(secrets.token_bytes(3))
            tag = _tag
    return tag


def _forget_tag() -> None:
    # a forked child (a gunicorn worker of a --preload master) is another process
    global _tag, _lock
    _tag = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_tag)


def new_sid() -> str:
    return process_tag() + _urlsafe(secrets.token_bytes(12))


def has_shape(sid: str) -> bool:
    """Whether ``sid`` could have been issued by an engineio_wsgi process."""
    return _SHAPE.match(sid) is not None


def issued_elsewhere(sid: str) -> bool:
    """A sid of the right shape that carries another process's tag."""
    return has_shape(sid) and sid[:TAG_LENGTH] != process_tag()
