from django.contrib import admin
from django.urls import include, path

from tests import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("orders/", views.create_order),
    path("orders-async/", views.create_order_async),
    path("whoami/", views.whoami),
    path("whoami-async/", views.whoami_async),
    path("fail/", views.fail),
    path("stream/", views.stream_orders),
    path("stream-async/", views.stream_orders_async),
    path("late-auth/", views.late_auth),
    path("aio/", include("tests.aioapp.urls")),
]
