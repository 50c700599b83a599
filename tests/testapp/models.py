"""Tracked models of the test project."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from koherent.fields import HistoricForeignKey, HistoryField
from koherent.models import KoherentHistoryModel


class User(AbstractUser):
    """A custom user model, so swappable-user code paths run."""


class Project(KoherentHistoryModel):
    """Tracked by inheritance."""

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")


class Order(models.Model):
    """Tracked with a field."""

    reference = models.CharField(max_length=50)
    status = models.CharField(max_length=20, default="new")
    total = models.IntegerField(default=0)

    history = HistoryField()

    def __str__(self) -> str:
        return self.reference


class Item(models.Model):
    """Tracked, with a foreign key to a tracked model."""

    order = HistoricForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=50)
    quantity = models.IntegerField(default=1)

    history = HistoryField()


class Note(models.Model):
    """Not tracked: its saves must not be touched by Koherent."""

    text = models.CharField(max_length=100)
