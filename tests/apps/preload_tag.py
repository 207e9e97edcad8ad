"""The echo app, for gunicorn --preload: draws this process's sid tag at import
(in the master, before the workers are forked) and writes it to stderr as
``preload tag <tag>``."""

from __future__ import annotations

import sys

from engineio_wsgi import sids
from tests.apps.echo import app

sys.stderr.write(f'preload tag {sids.process_tag()}\n')
sys.stderr.flush()

__all__ = ['app']
