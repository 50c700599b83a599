"""Tracked models written by the views the real servers run."""

from __future__ import annotations

from django.db import models

from koherent.fields import HistoryField


class Ticket(models.Model):
    reference = models.CharField(max_length=80)
    status = models.CharField(max_length=20, default="new")

    history = HistoryField()


class TicketEvent(models.Model):
    """Written by signal receivers (sync and async) reacting to tickets."""

    reference = models.CharField(max_length=80)
    kind = models.CharField(max_length=20)

    history = HistoryField()
