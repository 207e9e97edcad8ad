"""How many arguments an application's callable takes, for the hooks that
accept a short and a long form (``disconnect(sid)`` or ``(sid, reason)``,
``cors_allowed_origins(origin)`` or ``(origin, environ)``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def takes_args(fn: Callable[..., Any], count: int) -> bool:
    """True when ``fn`` can be called with ``count`` positional arguments.

    A signature Python cannot read (some builtins) counts as yes: the long
    form is the one the library documents.
    """
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= count
