"""The demo page app of ``python -m engineio_wsgi``, as a module gunicorn can load.

    EIO_DEMO_CLIENT_JS=node_modules/engine.io-client/dist/engine.io.min.js \
        gunicorn -k gevent -w 1 tests.interop.demo_app:app

The library's INFO log goes to stderr, as with ``python -m engineio_wsgi``.
"""

from __future__ import annotations

import logging
import os
import sys

from engineio_wsgi.__main__ import create_app, parse_args

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format='%(asctime)s %(levelname)s %(name)s: %(message)s')
app = create_app(parse_args(['--client-js', os.environ.get('EIO_DEMO_CLIENT_JS', 'cdn')]))
