"""The ASGI application of either service (its settings module comes from the environment)."""

from django.core.asgi import get_asgi_application

application = get_asgi_application()
