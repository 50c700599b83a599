"""Models of the query and revert tests: an invoice, its lines, labels and payments."""

from __future__ import annotations

from django.db import models

from koherent.fields import HistoryField


class Label(models.Model):
    """Not tracked: the target of the invoices' tracked many-to-many field."""

    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Invoice(models.Model):
    """Tracked, with a unique number and a tracked many-to-many field."""

    number = models.CharField(max_length=20, unique=True)
    status = models.CharField(max_length=20, default="draft")
    total = models.IntegerField(default=0)
    labels = models.ManyToManyField(Label, blank=True, related_name="invoices")

    # Tracked many-to-many fields: triggers cannot capture them (koherent.E073), signals do.
    history = HistoryField(m2m_fields=["labels"], capture="signal")

    def __str__(self) -> str:
        return self.number


class Line(models.Model):
    """Tracked, with a foreign key to a tracked model; unique per invoice and position."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.IntegerField()
    product = models.CharField(max_length=50)
    quantity = models.IntegerField(default=1)

    history = HistoryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="undoapp_line_position")
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id}/{self.position}"


class Payment(models.Model):
    """Not tracked, and pointing at an invoice: what a revert must not delete silently."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="payments")
    amount = models.IntegerField()


class Document(models.Model):
    """Tracked, and the parent of a multi-table inherited tracked model."""

    title = models.CharField(max_length=50)

    # Captured by signals like its child (the triggers of this table would also record the
    # child's parent rows, which signal capture records as the child's only).
    history = HistoryField(capture="signal")


class Contract(Document):
    """A multi-table child: bulk statements cannot create it, ``save()`` does."""

    party = models.CharField(max_length=50)

    # Multi-table inheritance: triggers cannot capture it (koherent.E073), signals do.
    history = HistoryField(capture="signal")


class Reminder(models.Model):
    """Not tracked, and let go (``SET_NULL``) when its invoice is deleted: a deletion that
    changes rows of another model."""

    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.SET_NULL, related_name="reminders"
    )
    text = models.CharField(max_length=50)


class Hold(models.Model):
    """Not tracked, and protecting (``PROTECT``) its invoice: a deletion no revert may force."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="holds")
    reason = models.CharField(max_length=50)
