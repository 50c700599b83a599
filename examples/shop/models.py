"""Three tracked models: products, orders, and the lines between them.

``HistoryField()`` gives each a simple-history table whose rows Koherent stamps with the user,
the app, the assignation and the Celery task of every change.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from koherent import HistoricForeignKey, HistoryField


class Product(models.Model):
    sku = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    history = HistoryField()

    def __str__(self) -> str:
        return self.sku


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed"
        CONFIRMED = "confirmed"
        SHIPPED = "shipped"

    customer = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=Status, default=Status.PLACED)
    total = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    tracking_number = models.CharField(max_length=30, blank=True)
    history = HistoryField()

    def __str__(self) -> str:
        return f"order {self.pk}"


class OrderLine(models.Model):
    # A HistoricForeignKey follows simple-history's as_of() from a line to its order.
    order = HistoricForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="lines")
    quantity = models.PositiveIntegerField()
    reserved = models.BooleanField(default=False)
    history = HistoryField()

    def __str__(self) -> str:
        return f"line {self.pk}"
