"""WSGI entry point: Django, wrapped so that /engine.io/ goes to the Engine.IO server.

    gunicorn -k gevent -w 1 mysite.wsgi:application
"""

import os

from django.core.wsgi import get_wsgi_application

from engineio_wsgi import WSGIApp
from mysite.realtime import eio

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')

application = WSGIApp(eio, get_wsgi_application())
