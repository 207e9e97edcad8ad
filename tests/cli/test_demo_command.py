"""``python -m engineio_wsgi`` / ``engineio-wsgi``, run as a user would: its --help
and stopping it with Ctrl+C (SIGINT) once it reports that it serves."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time

import pytest

from engineio_wsgi.__main__ import parse_args
from tests.live import ROOT, http_request

SERVING = re.compile(r'engineio_wsgi demo on http://127\.0\.0\.1:(\d+)/ \((gevent|threads)\); '
                     r'Ctrl\+C stops it')


def help_text(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        parse_args(['--help'])
    assert info.value.code == 0
    return ' '.join(capsys.readouterr().out.split())     # argparse wraps lines


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys)
    assert re.search(r'--host HOST .*\(default: 127\.0\.0\.1\)', text), text
    assert re.search(r'--port PORT .*\(default: 5000\)', text), text
    assert re.search(r'--ping-interval SECONDS .*\(default: 25\.0\)', text), text
    assert re.search(r'--ping-timeout SECONDS .*\(default: 20\.0\)', text), text


def test_help_lists_the_log_levels(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys)
    assert '--log-level {debug,info,warning,error,critical}' in text, text
    assert '(default: info)' in text, text


def test_log_level_is_case_insensitive_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(['--log-level', 'WARNING']).log_level == 'warning'
    with pytest.raises(SystemExit) as info:
        parse_args(['--log-level', 'loud'])
    assert info.value.code == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err


def read_until(proc: subprocess.Popen[str], pattern: re.Pattern[str], seconds: float) -> tuple[str, re.Match[str] | None]:
    """The output so far, and the first match of ``pattern`` (None at the deadline or exit)."""
    assert proc.stdout is not None
    out = ''
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=deadline - time.monotonic()):
                break
            line = proc.stdout.readline()
            if not line:
                break
            out += line
            found = pattern.search(line)
            if found:
                return out, found
    return out, None


@pytest.mark.parametrize('mode', ['gevent', 'threading'])
def test_ctrl_c_stops_the_demo_quietly(mode: str) -> None:
    cmd = [sys.executable, '-m', 'engineio_wsgi', '--port', '0', '--client-js', 'cdn',
           '--async-mode', mode]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    try:
        out, serving = read_until(proc, SERVING, 20)
        assert serving, f'the demo did not report that it serves:\n{out}'
        port = int(serving.group(1))
        assert port != 0, out                           # the port it really listens on
        assert http_request(port, 'GET', '/', timeout=5).status == 200
        proc.send_signal(signal.SIGINT)                 # as Ctrl+C would
        rest, _ = proc.communicate(timeout=10)
        out += rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert proc.returncode == 0, out
    assert 'KeyboardInterrupt' not in out and 'Traceback' not in out, out
    assert out.rstrip().endswith('engineio_wsgi demo stopped'), out
