"""The websocket application under test: Channels' auth stack in front of strawberry's
consumers, one with Koherent's per-operation extensions and the plain one."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path
from strawberry.channels import GraphQLWSConsumer

from koherent.strawberry import KoherentGraphQLWSConsumer
from tests.graphql.schema import schema

application = AuthMiddlewareStack(
    URLRouter(
        [
            path("graphql/", KoherentGraphQLWSConsumer.as_asgi(schema=schema)),
            path("graphql/plain/", GraphQLWSConsumer.as_asgi(schema=schema)),
        ]
    )
)
