"""gunicorn in a subprocess with the worker options a test needs (tests/live.py
starts its kinds with fixed ones)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

import pytest

from tests.live import ROOT


class Gunicorn:
    def __init__(self, proc: subprocess.Popen, port: int, log: list[str]) -> None:
        self.proc = proc
        self.port = port
        self.log = log   # stderr lines, filled in by a reader thread

    def text(self) -> str:
        return ''.join(self.log)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_gunicorn(worker_args: Sequence[str], app: str, env: Mapping[str, str],
                   extra: Sequence[str] = ()) -> Gunicorn:
    """One worker on a free port; returns once gunicorn listens."""
    proc = subprocess.Popen(
        [sys.executable, '-m', 'gunicorn', '-w', '1', '-b', '127.0.0.1:0',
         '--no-control-socket', *extra, *worker_args, app],
        cwd=ROOT, env={**os.environ, 'PYTHONPATH': ROOT, **env}, stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    port = None
    deadline = time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r'Listening at: http://127\.0\.0\.1:(\d+)', line)
        if match:
            port = int(match.group(1))
    if port is None:
        proc.kill()
        pytest.fail('gunicorn did not start:\n' + ''.join(lines))
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return Gunicorn(proc, port, lines)
