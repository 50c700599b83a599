"""The undo app's models in the admin, with Koherent's history columns."""

from __future__ import annotations

from django.contrib import admin

from koherent.admin import KoherentHistoryAdmin
from tests.undoapp.models import Invoice, Line


@admin.register(Invoice)
class InvoiceAdmin(KoherentHistoryAdmin):
    list_display = ("number", "status", "total")


@admin.register(Line)
class LineAdmin(KoherentHistoryAdmin):
    list_display = ("invoice", "position", "product", "quantity")
