"""The package's import graph: layers, top to bottom, where a module imports
only modules of its own layer or of a layer below, and no module imports a
module that imports it back, not even for type checking only: each layer can
be read (and replaced) on its own.

``LAYERS`` is the table; the README's "Architecture" table states the same
one (a test below compares them)."""

from __future__ import annotations

import ast
import pathlib
import re
import sys

import engineio_wsgi

PACKAGE = pathlib.Path(engineio_wsgi.__file__).parent
README = PACKAGE.parent / 'README.md'

# Top to bottom. A module is named by its path in the package: 'session',
# 'cluster.link'; a package by its __init__.py: '__init__' (engineio_wsgi
# itself), 'cluster'.
LAYERS: dict[str, set[str]] = {
    'Integrations': {'__init__', '__main__', 'socketio', 'flask_socketio', 'gunicorn_hooks'},
    'WSGI entry': {'middleware', 'static'},
    'The Engine.IO server': {'server', 'pipeline', 'handlers'},
    'Several processes': {'cluster', 'cluster.connect', 'cluster.contract', 'cluster.emitter',
                          'cluster.forward', 'cluster.inbox', 'cluster.link', 'cluster.node',
                          'cluster.owner', 'cluster.relay', 'cluster.wire'},
    'Transports': {'polling_transport', 'websocket_transport', 'rfc6455', 'rfc6455_fast',
                   'ioloop'},
    'Reading a request': {'request', 'wsgi_servers', 'cors', 'response'},
    'A session': {'session', 'lifecycle', 'transport', 'output', 'heartbeat', 'dispatch',
                  'registry', 'reasons'},
    'Below everything': {'packets', 'backends', 'locks', 'options', 'errors', 'fifo',
                         'callables', 'logs', 'rejectlog', 'trace', 'workers', 'sids'},
}


def _module(path: pathlib.Path) -> str:
    """'session', 'cluster.link', 'cluster' (for cluster/__init__.py),
    '__init__' (for the package's own __init__.py)."""
    parts = list(path.relative_to(PACKAGE).with_suffix('').parts)
    if parts[-1] == '__init__' and len(parts) > 1:
        parts.pop()
    return '.'.join(parts)


def _package_module(package: list[str]) -> str:
    return '.'.join(package) if package else '__init__'


def _resolve(package: list[str], level: int, name: str, graph_names: set[str]) -> str:
    """The module a relative import takes its names from: the module ``name``
    of the package ``level`` dots up, or that package itself (no ``name``:
    ``from . import Server``)."""
    base = package[:len(package) - (level - 1)] if level > 1 else package
    target = '.'.join([*base, name]) if name else ''
    return target if target in graph_names else _package_module(base)


def imports() -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports
    (relative or absolute imports, anywhere in the module, also under
    ``TYPE_CHECKING`` or in a function)."""
    paths = sorted(PACKAGE.rglob('*.py'))
    names = {_module(path) for path in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        module = _module(path)
        # the package a relative import is relative to
        package = module.split('.') if path.name == '__init__.py' else module.split('.')[:-1]
        package = [part for part in package if part and part != '__init__']
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    # an absolute import: engineio_wsgi[.x] is the package, zero dots up
                    head, _, rest = (node.module or '').partition('.')
                    if head != PACKAGE.name:
                        continue
                    level, from_module = 1, rest
                    package_of_import: list[str] = []
                else:
                    level, from_module, package_of_import = node.level, node.module or '', package
                # each name imported: a submodule (``from . import locks``), else
                # a name of the module imported from (``from .session import Session``)
                source = _resolve(package_of_import, level, from_module, names)
                inner = [] if source == '__init__' else source.split('.')
                for alias in node.names:
                    submodule = '.'.join([*inner, alias.name])
                    deps.add(submodule if submodule in names else source)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    head, _, rest = alias.name.partition('.')
                    if head == PACKAGE.name:
                        deps.add(_resolve([], 1, rest, names))
        deps.discard(module)
        graph[module] = deps
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


def upward_imports(graph: dict[str, set[str]], layers: dict[str, set[str]]) -> list[str]:
    """Each import of a module of a higher layer, as a sentence (a module in
    no layer is left to ``test_each_module_is_in_one_layer``)."""
    rank = {module: (index, name)
            for index, (name, modules) in enumerate(layers.items()) for module in modules}
    found = []
    for module in sorted(graph):
        for dep in sorted(graph[module]):
            if module in rank and dep in rank and rank[dep][0] < rank[module][0]:
                found.append(f'{module} (layer {rank[module][1]!r}) imports {dep}, '
                             f'of the higher layer {rank[dep][1]!r}')
    return found


def readme_layers() -> dict[str, set[str]]:
    """The layers of the README's "Architecture" table: a row with a layer
    name starts a layer, a row without one adds its modules to it;
    ``cluster/`` stands for the subpackage's every module."""
    text = README.read_text(encoding='utf-8')
    section = text.split('\n## Architecture\n', 1)[1].split('\n## ', 1)[0]
    layers: dict[str, set[str]] = {}
    current = None
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if not line.startswith('|') or len(cells) < 3 or cells[0] in ('Layer', '---'):
            continue
        if cells[0]:
            current = cells[0]
            layers[current] = set()
        assert current is not None, line
        for name in re.findall(r'`([^`]+)`', cells[1]):
            if name == 'cluster/':
                layers[current].update(module for module in imports()
                                       if module.split('.')[0] == 'cluster')
            else:
                assert name.endswith('.py'), f'not a module: {name!r} in README row {line!r}'
                layers[current].add(name[:-3])
    return layers


def test_the_graph_is_read_from_the_sources():
    graph = imports()
    assert 'session' in graph['polling_transport'] and 'transport' in graph['session']
    assert 'cluster.owner' in graph['cluster.link'] and 'polling_transport' in graph['cluster.owner']
    assert 'sids' in graph['cluster.node']
    # `from .server import Server` in the package's __init__.py, `from . import Server`
    # in a function of __main__.py, `from .emitter import ...` in cluster/__init__.py
    assert {'server', 'middleware'} <= graph['__init__']
    assert graph['__main__'] == {'__init__'}
    assert 'cluster.emitter' in graph['cluster']


def test_no_import_cycles():
    assert cycles(imports()) == []


def test_a_cycle_would_be_found():
    assert cycles({'a': {'b'}, 'b': {'a'}}) == [['a', 'b', 'a'], ['b', 'a', 'b']]


def test_each_module_is_in_one_layer():
    placed = [module for modules in LAYERS.values() for module in modules]
    twice = sorted({module for module in placed if placed.count(module) > 1})
    assert twice == [], f'in more than one layer: {twice}'
    modules = set(imports())
    assert modules - set(placed) == set(), 'modules in no layer of LAYERS'
    assert set(placed) - modules == set(), 'LAYERS names modules that do not exist'


def test_no_module_imports_a_higher_layer():
    found = upward_imports(imports(), LAYERS)
    assert found == [], 'imports from a higher layer:\n' + '\n'.join(found)


def test_an_upward_import_would_be_found():
    layers = {'top': {'a'}, 'middle': {'b', 'c'}, 'bottom': {'d'}}
    graph = {'a': {'b', 'd'}, 'b': {'c', 'd'}, 'c': {'a'}, 'd': {'b'}}
    assert upward_imports(graph, layers) == [
        "c (layer 'middle') imports a, of the higher layer 'top'",
        "d (layer 'bottom') imports b, of the higher layer 'middle'",
    ]


def test_absolute_imports_and_imported_submodules_are_read(tmp_path, monkeypatch):
    package = tmp_path / 'engineio_wsgi'
    (package / 'sub').mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'high.py').write_text('X = 1\n')
    (package / 'low.py').write_text('import engineio_wsgi.high\n')
    (package / 'mid.py').write_text('from engineio_wsgi.high import X\n'
                                    'from engineio_wsgi import low, Y\n')
    (package / 'sub' / '__init__.py').write_text('from .. import high\n')
    (package / 'sub' / 'one.py').write_text('def f():\n    from . import two\n')
    (package / 'sub' / 'two.py').write_text('from ..sub import one\n')
    monkeypatch.setattr(sys.modules[__name__], 'PACKAGE', package)
    assert imports() == {'__init__': set(), 'high': set(), 'low': {'high'},
                         'mid': {'high', 'low', '__init__'}, 'sub': {'high'},
                         'sub.one': {'sub.two'}, 'sub.two': {'sub.one'}}


def test_the_readme_states_the_same_layers():
    assert list(readme_layers().items()) == list(LAYERS.items())
