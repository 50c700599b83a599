from django.urls import path

from tests.capture import views

urlpatterns = [path("raise/", views.raise_prices)]
