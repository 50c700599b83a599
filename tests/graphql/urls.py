"""The GraphQL views under test: strawberry's sync and async Django views on one schema."""

from django.urls import path
from strawberry.django.views import AsyncGraphQLView, GraphQLView

from tests.graphql.schema import schema
from tests.urls import urlpatterns as core_urlpatterns

urlpatterns = [
    *core_urlpatterns,
    path("graphql/sync/", GraphQLView.as_view(schema=schema)),
    path("graphql/async/", AsyncGraphQLView.as_view(schema=schema)),
]
