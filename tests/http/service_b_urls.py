"""Service B: the test GraphQL schema, and a view telling what a call carried."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import GraphQLView

import koherent
from tests import views
from tests.graphql.schema import schema


def received(request: HttpRequest) -> JsonResponse:
    """The Koherent headers of the request, and the context B opened for it."""
    return JsonResponse(
        {
            "headers": {
                name: request.headers.get(name) for name in ("X-Assignation-ID", "X-Koherent-App")
            },
            "assignation_id": koherent.get_current_assignation_id(),
            "app": koherent.get_current_app(),
        }
    )


urlpatterns = [
    path("graphql/", csrf_exempt(GraphQLView.as_view(schema=schema))),
    path("received/", received),
    path("whoami/", views.whoami),
]
