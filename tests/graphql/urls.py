"""The GraphQL views under test: strawberry's sync and async Django views on one schema."""

from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import AsyncGraphQLView, GraphQLView

from tests.graphql.list_schema import optimized_schema, plain_schema
from tests.graphql.schema import schema
from tests.urls import urlpatterns as core_urlpatterns

urlpatterns = [
    *core_urlpatterns,
    path("graphql/sync/", csrf_exempt(GraphQLView.as_view(schema=schema))),
    path("graphql/async/", csrf_exempt(AsyncGraphQLView.as_view(schema=schema))),
    # The list schemas, with strawberry-django's optimizer ("optimized") and without.
    *(
        path(f"graphql/{name}/{mode}/", csrf_exempt(view.as_view(schema=list_schema)))
        for name, list_schema in (("optimized", optimized_schema), ("plain", plain_schema))
        for mode, view in (("sync", GraphQLView), ("async", AsyncGraphQLView))
    ),
]
