"""URLs: GraphQL (with GraphiQL in a browser) at /graphql/, the admin at /admin/."""

from django.contrib import admin
from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.generic import RedirectView
from strawberry.django.views import AsyncGraphQLView

from shop.schema import schema

urlpatterns = [
    path("", RedirectView.as_view(url="/graphql/")),
    # Session users: the GraphiQL page gets the CSRF cookie, and sends it back as X-CSRFToken.
    path("graphql/", ensure_csrf_cookie(AsyncGraphQLView.as_view(schema=schema))),
    path("admin/", admin.site.urls),
]
