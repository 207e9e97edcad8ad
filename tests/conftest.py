"""Top-level test configuration.

Makes the repository root importable, in this process and in the server
subprocesses the tests start, so that ``tests.apps.echo`` and ``tests.live``
import however pytest was invoked.
"""

from __future__ import annotations

import os
import sys

# Lock rules are asserted in this process and in every server it starts
# (set before engineio_wsgi is imported: the check is decided at import).
# ENGINEIO_WSGI_TEST_LOCKS=0 turns them off, in the servers too, so that the
# production lock path runs: scripts/test runs a few files so after the suite.
LOCK_CHECKS = os.environ.get("ENGINEIO_WSGI_TEST_LOCKS", "1") != "0"
os.environ["ENGINEIO_WSGI_DEBUG_LOCKS"] = "1" if LOCK_CHECKS else "0"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_pythonpath = os.environ.get("PYTHONPATH", "")
if ROOT not in _pythonpath.split(os.pathsep):
    os.environ["PYTHONPATH"] = ROOT + os.pathsep + _pythonpath if _pythonpath else ROOT
