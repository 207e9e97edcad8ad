"""The WSGI environ is read in one layer: below the request pipeline nothing
touches it (the Request and its ServerAdapter carry what the layers below need)."""

from __future__ import annotations

import ast
import pathlib

import engineio_wsgi

PACKAGE = pathlib.Path(engineio_wsgi.__file__).parent

#: the WSGI entry (middleware), the server's entry point and its pipeline, the
#: request/adapter layer, and the two places that hand the environ, unchanged,
#: to an application callable (the connect handler, a CORS callable)
ALLOWED = {'middleware.py', 'server.py', 'pipeline.py', 'request.py', 'wsgi_servers.py',
           'handlers.py', 'cors.py', '__main__.py'}


def environ_uses(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == 'environ':
            if isinstance(node.value, ast.Name) and node.value.id == 'os':
                continue   # the process environment, not a request's
            lines.append(node.lineno)
        elif (isinstance(node, ast.Name) and node.id == 'environ'
              or isinstance(node, ast.arg) and node.arg == 'environ'):
            lines.append(node.lineno)
    return sorted(lines)


def test_only_the_request_layer_reads_the_environ():
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        name = str(path.relative_to(PACKAGE))
        if name in ALLOWED:
            continue
        lines = environ_uses(path.read_text())
        if lines:
            found[name] = lines
    assert found == {}


def test_the_scan_finds_a_use():
    assert environ_uses('def f(request):\n    return request.environ\n') == [2]
    assert environ_uses('def f(environ):\n    pass\n') == [1]
    assert environ_uses('import os\nos.environ.get("X")\n') == []

