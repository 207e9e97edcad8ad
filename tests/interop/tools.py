"""Finding Node, the npm packages and Chromium, and running the Node scripts.

Missing tools make the tests fail (not skip) with the command that installs
them: ``scripts/test`` installs all of them on a fresh machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any

import pytest

from tests.live import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(ROOT, 'node_modules')
CLIENT_JS = os.path.join(NODE_MODULES, 'engine.io-client', 'dist', 'engine.io.min.js')
CHROMIUM = os.environ.get('EIO_CHROMIUM', '/usr/bin/chromium')
MIN_NODE = 20     # playwright-core's minimum

_INSTALL_HINT = ('scripts/test installs everything these tests need; by hand (as root on Debian):\n'
                 '    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y '
                 'nodejs chromium chromium-driver fonts-noto-color-emoji\n'
                 '    (Node.js 20 or newer; add the package npm if there is no "npm" then)\n'
                 '    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci   # in the repository root')


def node() -> str:
    """The ``node`` executable (20 or newer); fails the test when missing."""
    path = shutil.which('node')
    if path is None:
        pytest.fail(f'Node.js is not installed (no "node" on PATH).\n{_INSTALL_HINT}', pytrace=False)
    out = subprocess.run([path, '--version'], capture_output=True, text=True, timeout=20,
                         check=False).stdout
    try:
        major = int(out.strip().lstrip('v').split('.')[0])
    except ValueError:
        major = 0
    if major < MIN_NODE:
        pytest.fail(f'Node.js {MIN_NODE} or newer is needed, found {out.strip() or "?"} at {path}.\n'
                    f'{_INSTALL_HINT}', pytrace=False)
    return path


def node_package(name: str) -> str:
    """The installed npm package's folder; fails the test when missing."""
    folder = os.path.join(NODE_MODULES, *name.split('/'))
    if not os.path.isfile(os.path.join(folder, 'package.json')):
        pytest.fail(f'The npm package {name} is not installed in {NODE_MODULES}.\n{_INSTALL_HINT}',
                    pytrace=False)
    return folder


def package_version(name: str) -> str:
    with open(os.path.join(node_package(name), 'package.json'), encoding='utf-8') as f:
        return json.load(f)['version']


def client_js() -> str:
    """The official browser build of engine.io-client, as installed by npm."""
    node_package('engine.io-client')
    if not os.path.isfile(CLIENT_JS):
        pytest.fail(f'{CLIENT_JS} is missing: the engine.io-client package looks incomplete.\n'
                    f'{_INSTALL_HINT}', pytrace=False)
    return CLIENT_JS


def chromium() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f'Chromium is not installed at {CHROMIUM} (set EIO_CHROMIUM to use another).\n'
                    f'{_INSTALL_HINT}', pytrace=False)
    return CHROMIUM


def run_node_script(script: str, config: dict[str, Any], timeout: float,
                    env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``node tests/interop/<script> CONFIG.json``; return its JSON output.

    Fails the test with Node's stderr when it exits non-zero or prints no JSON.
    """
    exe = node()
    node_package('engine.io-client')
    fd, path = tempfile.mkstemp(prefix='eio-interop-', suffix='.json')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(config, f)
        try:
            proc = subprocess.run(
                [exe, os.path.join(HERE, script), path], cwd=ROOT, capture_output=True,
                text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
                env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f'node {script} did not finish within {timeout} s\n'
                        f'--- stderr ---\n{_text(exc.stderr)[-4000:]}')
    finally:
        os.unlink(path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode != 0 or not lines:
        pytest.fail(f'node {script} exited with {proc.returncode}\n'
                    f'--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}')
    return json.loads(lines[-1])


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ''
    return data if isinstance(data, str) else data.decode('utf-8', 'replace')
