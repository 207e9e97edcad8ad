"""No module of the package imports a module that imports it back, not even
for type checking only: each layer can be read (and replaced) on its own."""

from __future__ import annotations

import ast
import pathlib

import engineio_wsgi

PACKAGE = pathlib.Path(engineio_wsgi.__file__).parent


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob('*.py'):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split('.')[0])
                else:
                    deps.update(alias.name for alias in node.names)
        graph[path.stem] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found = []
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for dep in sorted(graph.get(node, ())):
                if dep == start:
                    found.append([*path, dep])
                elif dep not in path and dep in graph:
                    stack.append((dep, [*path, dep]))
    return found


def test_the_graph_is_read_from_the_sources():
    graph = imports()
    assert 'session' in graph['polling_transport'] and 'transport' in graph['session']


def test_no_import_cycles():
    assert cycles(imports()) == []


def test_a_cycle_would_be_found():
    assert cycles({'a': {'b'}, 'b': {'a'}}) == [['a', 'b', 'a'], ['b', 'a', 'b']]
