"""A task of Django's tasks framework writing trigger-captured rows with update()."""

from __future__ import annotations

from django.db.models import F

from koherent.django_tasks import task
from tests.capture.models import Product


@task
def raise_price(name: str) -> int:
    return Product.objects.filter(name=name).update(price=F("price") + 1)
