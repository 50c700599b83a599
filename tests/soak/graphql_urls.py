"""The GraphQL soak's server URLs: the GraphQL tests' URLs and ``/graphql/soak/``, the async
view on the soak's schema (:mod:`tests.soak.graphql_schema`)."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView

from tests.graphql.urls import urlpatterns as graphql_urlpatterns
from tests.soak.graphql_schema import schema

urlpatterns = [
    *graphql_urlpatterns,
    path("graphql/soak/", csrf_exempt(AsyncGraphQLView.as_view(schema=schema))),
]
