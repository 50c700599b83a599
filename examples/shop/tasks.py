"""Background work of the shop.

Placing an order starts this workflow (``fulfil_order``)::

    chord(reserve_stock(line) for each line) -> confirm_order(order)   # a chord
        -> ship_order(order)                                            # chained after it

Every task runs in the audit context of the request that placed the order: its changes are
stamped with the customer's user, app and assignation, and the id of the task that made them,
so reverting the assignation undoes the request's changes and the workers' together.
"""

from __future__ import annotations

import logging

from celery import chain, chord, shared_task
from django.db import transaction

from koherent.celery import audited
from shop.catalog import LOW_STOCK, RESTOCK_UNITS
from shop.models import Order, OrderLine, Product

logger = logging.getLogger(__name__)


def fulfil_order(order: Order) -> None:
    """Send the order's workflow once the transaction that created it has committed."""
    reservations = [reserve_stock.si(line.pk) for line in order.lines.all()]
    workflow = chain(chord(reservations, confirm_order.s(order.pk)), ship_order.si(order.pk))
    transaction.on_commit(workflow.delay)


@shared_task
def reserve_stock(line_id: int) -> int:
    """Take the line's quantity out of its product's stock; the number of units reserved."""
    with transaction.atomic():
        line = OrderLine.objects.select_for_update().get(pk=line_id)
        product = Product.objects.select_for_update().get(pk=line.product_id)
        if product.stock < line.quantity:
            raise ValueError(f"not enough {product.sku}: {product.stock} < {line.quantity}")
        product.stock -= line.quantity
        product.save(update_fields=["stock"])
        line.reserved = True
        line.save(update_fields=["reserved"])
    logger.info("reserved %s x %s for order %s", line.quantity, product.sku, line.order_id)
    return line.quantity


@shared_task
def confirm_order(reserved: list[int], order_id: int) -> None:
    """The chord's callback: runs once every line is reserved."""
    order = Order.objects.get(pk=order_id)
    order.status = Order.Status.CONFIRMED
    order.save(update_fields=["status"])
    logger.info("order %s confirmed (%s units reserved)", order_id, sum(reserved))


@shared_task
def ship_order(order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    order.status = Order.Status.SHIPPED
    order.tracking_number = f"TRK-{order_id:06d}"
    order.save(update_fields=["status", "tracking_number"])
    logger.info("order %s shipped as %s", order_id, order.tracking_number)


@audited(fresh_assignation=True, app="restocker", origin="beat")
@shared_task
def restock_low_products() -> int:
    """Run by beat: each run is an assignation of its own, so one run's restock can be
    reviewed and reverted as a whole."""
    count = 0
    with transaction.atomic():
        # Not F("stock") + n: simple-history cannot write an expression into a history row.
        for product in Product.objects.select_for_update().filter(stock__lt=LOW_STOCK):
            product.stock += RESTOCK_UNITS
            product.save(update_fields=["stock"])
            count += 1
    logger.info("restocked %s products", count)
    return count
