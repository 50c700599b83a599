"""Views writing trigger-captured rows without save(): what a request's context stamps."""

from __future__ import annotations

from django.db import connection
from django.db.models import F
from django.http import HttpRequest, JsonResponse

from tests.capture.models import Product


def raise_prices(request: HttpRequest) -> JsonResponse:
    changed = Product.objects.update(price=F("price") + 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return JsonResponse({"changed": changed, "pid": pid})
