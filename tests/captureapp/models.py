"""Models of the update() capture tests: products with a manager and queryset of their own.

Koherent's ``update()`` capture and the revert's unrecorded changes are those of signal
capture: every tracked model here says ``capture="signal"``, on every pass (the trigger
counterparts are in ``tests/capture``, on models captured by triggers).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from koherent.fields import HistoryField


class ProductQuerySet(models.QuerySet["Product"]):
    """A project's own queryset: a filter method, and an ``update()`` override."""

    #: Every ``update()`` call this queryset saw (the override must keep running).
    update_calls: ClassVar[list[dict[str, Any]]] = []

    def in_stock(self) -> ProductQuerySet:
        return self.filter(stock__gt=0)

    def update(self, **kwargs: Any) -> int:
        ProductQuerySet.update_calls.append(kwargs)
        return super().update(**kwargs)


class ActiveProductManager(models.Manager.from_queryset(ProductQuerySet)):  # type: ignore[misc]
    """The default manager hides archived products."""

    def get_queryset(self) -> ProductQuerySet:
        return super().get_queryset().filter(archived=False)  # type: ignore[no-any-return]


class Category(models.Model):
    """Not tracked: what products are filtered by through a join."""

    name = models.CharField(max_length=50)


class Product(models.Model):
    """Tracked, with a custom default manager and queryset."""

    name = models.CharField(max_length=50)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.IntegerField(default=0)
    archived = models.BooleanField(default=False)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    #: Left out of the history.
    internal_note = models.CharField(max_length=50, blank=True, default="")

    history = HistoryField(excluded_fields=["internal_note"], capture="signal")

    objects = ActiveProductManager()
    everything = models.Manager()  # noqa: DJ012 (the default manager is declared first)

    def __str__(self) -> str:
        return self.name


class SaleProduct(Product):
    """A proxy: its updates are the tracked product's."""

    class Meta:
        proxy = True


class Shelf(models.Model):
    """Tracked, and the parent of a multi-table inherited tracked model."""

    label = models.CharField(max_length=50)

    history = HistoryField(capture="signal")


class FridgeShelf(Shelf):
    """A multi-table child: its update() spans two tables (keys read first)."""

    temperature = models.IntegerField(default=4)

    history = HistoryField(capture="signal")
