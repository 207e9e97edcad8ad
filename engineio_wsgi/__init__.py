"""engineio_wsgi: an Engine.IO v4 server for WSGI applications, on threads or gevent."""

from .errors import ConnectionRefusedError, EngineIOError, RequestError
from .middleware import WSGIApp
from .reasons import Reason
from .server import Server

__version__ = '0.1.0'

__all__ = ['ConnectionRefusedError', 'EngineIOError', 'Reason', 'RequestError', 'Server',
           'WSGIApp', '__version__']
