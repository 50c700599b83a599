"""The ASGI application: ``uvicorn example.asgi:application``."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

django_application = get_asgi_application()

# The admin's CSS and JavaScript, served by the app itself (see SERVE_STATIC in settings).
application = (
    ASGIStaticFilesHandler(django_application) if settings.SERVE_STATIC else django_application
)
