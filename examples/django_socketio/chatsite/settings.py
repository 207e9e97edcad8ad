"""Settings for the example project: no database, no apps, one page and two API views."""

import os

# Set DJANGO_SECRET_KEY in production; this fallback is for trying the example only.
SECRET_KEY = os.environ.get('DJANGO_SECRET_KEY', 'example-only-not-secret')
DEBUG = os.environ.get('DJANGO_DEBUG', '') == '1'
ALLOWED_HOSTS = os.environ.get('DJANGO_ALLOWED_HOSTS', '127.0.0.1,localhost').split(',')

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.middleware.common.CommonMiddleware',
]
ROOT_URLCONF = 'chatsite.urls'
WSGI_APPLICATION = 'chatsite.wsgi.application'
DATABASES: dict = {}
USE_TZ = True
