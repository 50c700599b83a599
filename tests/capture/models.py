"""Models captured by PostgreSQL triggers (installed on the PostgreSQL test pass only)."""

from __future__ import annotations

import uuid

from django.db import models

from koherent.fields import HistoricForeignKey, HistoryField


class Product(models.Model):
    """Captured by triggers: the issue's misattribution example."""

    name = models.CharField(max_length=50)
    price = models.IntegerField(default=0)
    stock = models.IntegerField(default=0)

    history = HistoryField(capture="trigger")

    def __str__(self) -> str:
        return self.name


class Part(models.Model):
    """Captured by triggers, with a UUID key, a historic foreign key, an excluded field, a
    UUID history id, its own history table name and a text change reason."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    product = HistoricForeignKey(Product, on_delete=models.CASCADE, related_name="parts")
    code = models.CharField(max_length=20)
    weight = models.IntegerField(default=0)
    scratch = models.CharField(max_length=50, blank=True, default="")

    history = HistoryField(
        capture="trigger",
        excluded_fields=["scratch"],
        history_id_field=models.UUIDField(default=uuid.uuid4),
        table_name="capture_part_audit",
        history_change_reason_field=models.TextField(null=True),
    )


class Counter(models.Model):
    """Captured by triggers, with a row written for every UPDATE, changed or not."""

    name = models.CharField(max_length=50)
    value = models.IntegerField(default=0)

    history = HistoryField(capture="trigger", capture_unchanged=True)


class Ledger(models.Model):
    """Captured by signals, next to the trigger-captured models."""

    name = models.CharField(max_length=50)
    amount = models.IntegerField(default=0)

    history = HistoryField(capture="signal")


class Switch(models.Model):
    """Captured by signals in migration 0001, by triggers from migration 0002 on."""

    name = models.CharField(max_length=50)
    level = models.IntegerField(default=0)

    history = HistoryField(capture="trigger")


class Gadget(models.Model):
    """Captured by signals, with its history inherited by a multi-table child."""

    name = models.CharField(max_length=50)

    history = HistoryField(capture="signal", inherit=True)


class Widget(Gadget):
    """Multi-table inheritance: trigger capture would refuse it (koherent.E073)."""

    size = models.IntegerField(default=0)


class FaultOrder(models.Model):
    """Captured by triggers: the order of the database-fault scenario's ``trigger`` variant
    (``tests/soak/test_database_faults.py``), with the fields of ``testapp.Order`` it checks."""

    reference = models.CharField(max_length=50)
    status = models.CharField(max_length=20, default="new")
    total = models.IntegerField(default=0)

    history = HistoryField(capture="trigger")

    def __str__(self) -> str:
        return self.reference


class Placed(models.Model):
    """Captured by triggers, in a PostgreSQL schema of its own: Django names the table
    ``"schema"."table"``, and its history table lives in that schema too."""

    name = models.CharField(max_length=50)
    price = models.IntegerField(default=0)

    objects: models.Manager[Placed] = models.Manager()
    history = HistoryField(
        capture="trigger", table_name='"koherent_other"."capture_historicalplaced"'
    )

    class Meta:
        db_table = '"koherent_other"."capture_placed"'

    def __str__(self) -> str:
        return self.name


class Routed(models.Model):
    """Captured by triggers, and sent with its history to the ``other`` database by the
    router of the routed tests (``tests.capture.router``)."""

    name = models.CharField(max_length=50)
    price = models.IntegerField(default=0)

    objects: models.Manager[Routed] = models.Manager()
    history = HistoryField(capture="trigger")

    def __str__(self) -> str:
        return self.name
