"""Views run by the real ASGI and WSGI servers; each reports the audit context it saw."""

from __future__ import annotations

import threading
from typing import Any

from django.contrib.auth import authenticate, login
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import koherent
from tests.aioapp.models import Ticket
from tests.aioapp.signals import ticket_placed
from tests.testapp.models import Order


def _report(request: HttpRequest) -> JsonResponse:
    ctx = koherent.current()
    return JsonResponse(
        {
            "assignation_id": ctx.assignation_id,
            "user_id": ctx.user_id,
            "app": ctx.app,
            "port": request.META.get("REMOTE_PORT"),
            "thread": threading.get_ident(),
        }
    )


@csrf_exempt
def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return JsonResponse({"error": "bad credentials"}, status=403)
    login(request, user)
    return JsonResponse({"user_id": user.pk})


@csrf_exempt
async def tickets(request: HttpRequest) -> HttpResponse:
    """Create, update, create-and-delete with the async ORM; then an async signal."""
    reference = request.POST["reference"]
    ticket = Ticket(reference=reference)
    await ticket.asave()
    ticket.status = "closed"
    await ticket.asave()
    scratch = Ticket(reference=f"{reference}:x")
    await scratch.asave()
    await scratch.adelete()
    await ticket_placed.asend(sender=Ticket, ticket=ticket)
    return _report(request)


@csrf_exempt
def tickets_sync(request: HttpRequest) -> HttpResponse:
    """The same with the sync ORM and ``send`` (which runs the async receivers too)."""
    reference = request.POST["reference"]
    ticket = Ticket.objects.create(reference=reference)
    ticket.status = "closed"
    ticket.save()
    scratch = Ticket.objects.create(reference=f"{reference}:x")
    scratch.delete()
    ticket_placed.send(sender=Ticket, ticket=ticket)
    return _report(request)


@csrf_exempt
async def fail(request: HttpRequest) -> HttpResponse:
    await Ticket.objects.acreate(reference=request.POST["reference"])
    raise RuntimeError("this view fails after writing")


@csrf_exempt
def fail_sync(request: HttpRequest) -> HttpResponse:
    Ticket.objects.create(reference=request.POST["reference"])
    raise RuntimeError("this view fails after writing")


@csrf_exempt
async def whoami(request: HttpRequest) -> HttpResponse:
    return _report(request)


@csrf_exempt
def whoami_sync(request: HttpRequest) -> HttpResponse:
    return _report(request)


@csrf_exempt
def fault_write(request: HttpRequest) -> HttpResponse:
    """Write an order and change it in one transaction, ``pause`` seconds (in the database)
    between (the database-fault scenario terminates backends meanwhile). ``capture=trigger``
    writes a trigger-captured order (``tests.capture``'s ``FaultOrder``, PostgreSQL)."""
    reference = request.POST["reference"]
    pause = float(request.POST.get("pause", "0"))
    model: Any = Order
    if request.POST.get("capture") == "trigger":
        from tests.capture.models import FaultOrder

        model = FaultOrder
    with transaction.atomic():
        order = model.objects.create(reference=reference)
        if pause:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(%s)", [pause])
        order.status = "done"
        order.save()
    return _report(request)


@csrf_exempt
def introspect(request: HttpRequest) -> HttpResponse:
    """The server process's caches and live audit contexts (``tests.soak.introspect``)."""
    from tests.soak.introspect import snapshot

    return JsonResponse(snapshot())


@csrf_exempt
def leak(request: HttpRequest) -> HttpResponse:
    """Keep the request's context past the request (the memory scenario's negative control)."""
    from tests.soak.introspect import leak as keep

    keep()
    return _report(request)


@csrf_exempt
def order(request: HttpRequest) -> HttpResponse:
    """Write one order named ``reference`` (the memory scenario's request)."""
    Order.objects.create(reference=request.POST["reference"])
    return _report(request)
