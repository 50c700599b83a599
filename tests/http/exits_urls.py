"""Views that make an outgoing call to the echo server and answer with the assignation header
it received. The user may be authenticated inside the view, as Django REST framework does:
``X-Test-User: <username>`` names them (after ``KoherentMiddleware`` ran)."""

from __future__ import annotations

import httpx
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

import koherent.http.httpx
from tests import views


def _authenticate_in_view(request: HttpRequest) -> None:
    username = request.headers.get("X-Test-User")
    if username:
        request.user = get_user_model().objects.get(username=username)


async def _aauthenticate_in_view(request: HttpRequest) -> None:
    username = request.headers.get("X-Test-User")
    if username:
        request.user = await get_user_model().objects.aget(username=username)


def call(request: HttpRequest) -> HttpResponse:
    _authenticate_in_view(request)
    with koherent.http.httpx.install(httpx.Client(timeout=10)) as client:
        echoed = client.get(request.GET["to"]).json()["headers"]
    return JsonResponse({"sent": echoed.get("x-assignation-id")})


async def acall(request: HttpRequest) -> HttpResponse:
    await _aauthenticate_in_view(request)
    async with koherent.http.httpx.install(httpx.AsyncClient(timeout=10)) as client:
        echoed = (await client.get(request.GET["to"])).json()["headers"]
    return JsonResponse({"sent": echoed.get("x-assignation-id")})


urlpatterns = [
    path("call/", call),
    path("acall/", acall),
    path("whoami/", views.whoami),
]
