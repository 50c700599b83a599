"""Views the middleware tests call through Django's test clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

import koherent
from tests.testapp.models import Order


def _context_json() -> JsonResponse:
    ctx = koherent.current()
    return JsonResponse(
        {
            "assignation_id": ctx.assignation_id,
            "user_id": ctx.user_id,
            "app": ctx.app,
            "origin": ctx.origin,
        }
    )


@csrf_exempt
def create_order(request: HttpRequest) -> HttpResponse:
    order = Order.objects.create(reference=request.POST.get("reference", "web"))
    return JsonResponse({"id": order.pk, "assignation_id": koherent.get_current_assignation_id()})


@csrf_exempt
async def create_order_async(request: HttpRequest) -> HttpResponse:
    order = Order(reference=request.POST.get("reference", "web-async"))
    await order.asave()
    order.status = "saved"
    await order.asave()
    return JsonResponse({"id": order.pk, "assignation_id": koherent.get_current_assignation_id()})


def whoami(request: HttpRequest) -> HttpResponse:
    return _context_json()


async def whoami_async(request: HttpRequest) -> HttpResponse:
    return _context_json()


def fail(request: HttpRequest) -> HttpResponse:
    Order.objects.create(reference="before-failure")
    raise RuntimeError("view failed")


def stream_orders(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[str]:
        for n in range(3):
            order = Order.objects.create(reference=f"stream-{n}")
            yield f"{order.pk}:{koherent.get_current_assignation_id()}\n"

    return StreamingHttpResponse(chunks())


async def stream_orders_async(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[str]:
        for n in range(3):
            order = Order(reference=f"astream-{n}")
            await order.asave()
            yield f"{order.pk}:{koherent.get_current_assignation_id()}\n"

    return StreamingHttpResponse(chunks())


@csrf_exempt
def late_auth(request: HttpRequest) -> HttpResponse:
    """Authenticates in the view, as Django REST framework does, after the middleware ran."""
    from django.contrib.auth import get_user_model

    request.user = get_user_model().objects.get(username=request.headers["X-Test-User"])
    order = Order.objects.create(reference="late")
    return JsonResponse({"id": order.pk})
