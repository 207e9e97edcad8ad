"""Serve a WSGI app with gevent.pywsgi WITHOUT monkey-patching (for test_rfc6455).

    python tests/apps/ws_nopatch.py MODULE:ATTRIBUTE

Prints ``LISTENING <port>`` once bound. Sockets are gevent's cooperative
ones, while ``threading``, ``time`` and ``select`` stay the standard ones.
"""

import importlib
import os
import sys

if sys.path and os.path.abspath(sys.path[0] or '.') == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    module_name, _, attribute = argv[0].partition(':')
    app = getattr(importlib.import_module(module_name), attribute or 'app')

    from gevent.pywsgi import WSGIServer

    server = WSGIServer(('127.0.0.1', 0), app, log=sys.stderr, error_log=sys.stderr)
    server.init_socket()
    print(f'LISTENING {server.server_port}', flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main(sys.argv[1:])
