"""The trigger-captured product in the admin, with simple-history's history view."""

from __future__ import annotations

from django.contrib import admin

from koherent.admin import KoherentHistoryAdmin
from tests.capture.models import Product


@admin.register(Product)
class ProductAdmin(KoherentHistoryAdmin):
    list_display = ("name", "price", "stock")
