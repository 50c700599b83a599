"""The multi-database tests' URLs: the admin and a GraphQL view of the routed app."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import GraphQLView

from tests.multidbapp.schema import schema
from tests.urls import urlpatterns as core_urlpatterns

urlpatterns = [
    *core_urlpatterns,
    path("graphql/", csrf_exempt(GraphQLView.as_view(schema=schema))),
]
