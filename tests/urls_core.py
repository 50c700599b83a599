"""URLs without the admin, for projects that run only Koherent's core."""

from django.urls import path

from tests import views

urlpatterns = [path("whoami/", views.whoami), path("orders/", views.create_order)]
