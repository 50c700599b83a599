from django.urls import path

from tests.aioapp import views

urlpatterns = [
    path("login/", views.login_view),
    path("tickets/", views.tickets),
    path("tickets-sync/", views.tickets_sync),
    path("fail/", views.fail),
    path("fail-sync/", views.fail_sync),
    path("whoami/", views.whoami),
    path("whoami-sync/", views.whoami_sync),
    path("fault-write/", views.fault_write),
    path("order/", views.order),
    path("introspect/", views.introspect),
    path("leak/", views.leak),
]
