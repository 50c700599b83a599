"""Models of the multi-database tests: a ticket and its notes, tracked, on ``other``."""

from __future__ import annotations

from django.db import models

from koherent.fields import HistoryField


class Ticket(models.Model):
    """Tracked; the router sends it and its history to the ``other`` database."""

    title = models.CharField(max_length=50, unique=True)
    status = models.CharField(max_length=20, default="open")

    history = HistoryField()

    def __str__(self) -> str:
        return self.title


class Note(models.Model):
    """Tracked, pointing at a ticket: a revert re-creates and deletes in dependency order."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    text = models.CharField(max_length=100)

    history = HistoryField()
