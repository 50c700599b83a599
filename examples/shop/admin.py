"""The shop in the admin: each object's history page shows the assignation, app and task of
every change (``KoherentHistoryAdmin``); koherent.admin adds the assignation list, with each
assignation's timeline and a revert button."""

from django.contrib import admin

from koherent.admin import KoherentHistoryAdmin
from shop.models import Order, OrderLine, Product


@admin.register(Product)
class ProductAdmin(KoherentHistoryAdmin):
    list_display = ("sku", "name", "price", "stock")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0


@admin.register(Order)
class OrderAdmin(KoherentHistoryAdmin):
    list_display = ("id", "customer", "status", "total", "tracking_number")
    list_filter = ("status",)
    inlines = [OrderLineInline]


@admin.register(OrderLine)
class OrderLineAdmin(KoherentHistoryAdmin):
    list_display = ("id", "order", "product", "quantity", "reserved")
