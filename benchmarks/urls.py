"""URLs of the benchmark project: the async GraphQL view of the GraphQL scenario."""

from __future__ import annotations

from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView

from benchmarks.graphql_schema import schema

urlpatterns = [
    path("graphql/", csrf_exempt(AsyncGraphQLView.as_view(schema=schema))),
]
