"""The ASGI application of the real server: Django (both GraphQL views) for HTTP, strawberry's
Channels consumers behind Channels' auth stack for websockets."""

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

django_application = get_asgi_application()  # sets Django up before the schema is imported

from tests.graphql.asgi import application as websocket_application  # noqa: E402

application = ProtocolTypeRouter({"http": django_application, "websocket": websocket_application})
