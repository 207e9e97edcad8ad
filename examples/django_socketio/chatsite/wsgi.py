"""WSGI entry point: Django, wrapped so that /socket.io/ goes to python-socketio.

    gunicorn -k gevent -w 1 chatsite.wsgi:application
"""

import os

from django.core.wsgi import get_wsgi_application

from chatsite.sio import sio
from engineio_wsgi.socketio import WSGIApp

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'chatsite.settings')

application = WSGIApp(sio, get_wsgi_application())
