"""The engineio_wsgi echo server with tracemalloc on, for ``bench/memprofile.py``.

``GET /tracemalloc?name=NAME`` collects garbage, then writes a tracemalloc
snapshot of the worker to BENCH_TRACEMALLOC_DIR/NAME.snapshot and answers with
its path, and NAME.types.json: for each type of object the garbage collector
tracks, how many there are and the bytes sys.getsizeof gives for them; every
other request goes to the echo server of ``eiowsgi_echo.py``.

Environment: as ``eiowsgi_echo.py``, plus BENCH_TRACEMALLOC_DIR and
BENCH_TRACEMALLOC_FRAMES (frames kept per allocation, default 8).
"""

import collections
import gc
import json
import os
import sys
import tracemalloc
from pathlib import Path
from urllib.parse import parse_qs

# before the server is imported: its own allocations are traced too
tracemalloc.start(int(os.environ.get('BENCH_TRACEMALLOC_FRAMES', '8')))

import engineio_wsgi  # noqa: E402

if os.environ.get('BENCH_EXPERIMENT'):
    import eiowsgi_experiment  # noqa: E402,F401  (its patches, for memprofile.py)

from eiowsgi_echo import eio  # noqa: E402

OUT = Path(os.environ.get('BENCH_TRACEMALLOC_DIR', '/tmp'))


def snapshot_app(environ, start_response):
    if environ.get('PATH_INFO') != '/tracemalloc':
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'not found\n']
    name = parse_qs(environ.get('QUERY_STRING', '')).get('name', ['snapshot'])[0]
    name = ''.join(c for c in name if c.isalnum() or c in '-_') or 'snapshot'
    gc.collect()
    path = OUT / f'{name}.snapshot'
    tracemalloc.take_snapshot().dump(str(path))
    counts: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        key = f'{kind.__module__}.{kind.__qualname__}'
        counts[key] += 1
        sizes[key] += sys.getsizeof(obj)
    (OUT / f'{name}.types.json').write_text(json.dumps({'count': counts, 'bytes': sizes}))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [f'{path}\n'.encode()]


app = engineio_wsgi.WSGIApp(eio, snapshot_app)
