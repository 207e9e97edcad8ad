"""No module of the package imports a module that imports it back, not even
for type checking only: each layer can be read (and replaced) on its own."""

from __future__ import annotations

import ast
import pathlib

import engineio_wsgi

PACKAGE = pathlib.Path(engineio_wsgi.__file__).parent


def _module(path: pathlib.Path) -> str:
    """'session', 'cluster.link', 'cluster' (for cluster/__init__.py)."""
    parts = list(path.relative_to(PACKAGE).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _resolve(package: list[str], level: int, name: str, graph_names: set[str]) -> str:
    """The module a relative import names (a submodule when it is one)."""
    base = package[:len(package) - (level - 1)] if level > 1 else package
    target = '.'.join([*base, name]) if name else '.'.join(base)
    return target if target in graph_names else target.rsplit('.', 1)[0]


def imports() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob('*.py'))
    names = {_module(path) for path in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        module = _module(path)
        # the package a relative import is relative to
        package = module.split('.') if path.name == '__init__.py' else module.split('.')[:-1]
        package = [part for part in package if part]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                if node.module:
                    deps.add(_resolve(package, node.level, node.module, names))
                else:
                    deps.update(_resolve(package, node.level, alias.name, names)
                                for alias in node.names)
        deps.discard(module)
        graph[module] = {dep for dep in deps if dep}
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
    assert 'cluster.owner' in graph['cluster.link'] and 'polling_transport' in graph['cluster.owner']
    assert 'sids' in graph['cluster.node']


def test_no_import_cycles():
    assert cycles(imports()) == []


def test_a_cycle_would_be_found():
    assert cycles({'a': {'b'}, 'b': {'a'}}) == [['a', 'b', 'a'], ['b', 'a', 'b']]
