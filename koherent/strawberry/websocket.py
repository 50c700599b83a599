"""GraphQL over websockets with Channels: a consumer that lets each operation name its own
assignation.

Strawberry's ``GraphQLWSConsumer`` already works with :class:`KoherentExtension`: every
operation on a connection runs for the connection's user (``scope["user"]``, set by Channels'
``AuthMiddlewareStack``) and for the assignation and app named in its ``connection_init``
parameters (``{"X-Assignation-ID": "...", "X-Koherent-App": "..."}``). Strawberry does not hand
a ``subscribe`` message's ``extensions`` to the schema; :class:`KoherentGraphQLWSConsumer` does
(for the ``graphql-transport-ws`` protocol), so an operation can name its own assignation with
``{"extensions": {"koherent": {"assignationId": "..."}}}``::

    application = ProtocolTypeRouter({
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter([
            path("graphql/", KoherentGraphQLWSConsumer.as_asgi(schema=schema)),
        ])),
    })
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strawberry.channels import GraphQLWSConsumer
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)

from koherent.strawberry.operation import websocket_operation_extensions

if TYPE_CHECKING:
    from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage


class KoherentTransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """Makes a ``subscribe`` message's ``extensions`` visible to the operation it starts."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload = message.get("payload")
        extensions = payload.get("extensions") if isinstance(payload, dict) else None
        # The operation's task is created inside, and copies this value; the handler's own
        # task gets its previous value back right after.
        token = websocket_operation_extensions.set(
            extensions if isinstance(extensions, dict) else None
        )
        try:
            await super().handle_subscribe(message)
        finally:
            websocket_operation_extensions.reset(token)


class KoherentGraphQLWSConsumer(GraphQLWSConsumer[Any, Any]):
    """strawberry's Channels websocket consumer, passing each operation's ``extensions``."""

    graphql_transport_ws_handler_class = KoherentTransportWSHandler
