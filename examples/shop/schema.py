"""The GraphQL API: the shop's types, a ``placeOrder`` mutation, and Koherent's audit trail.

``KoherentExtension`` runs every operation in its request's audit context (the user, the app,
the ``X-Assignation-ID`` header or a fresh assignation per mutation). ``KoherentQuery`` adds
``assignation(id)`` and ``assignations``; ``KoherentMutation`` adds ``revertAssignation``.
"""

from __future__ import annotations

from decimal import Decimal

import strawberry
import strawberry_django
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from strawberry_django.optimizer import DjangoOptimizerExtension
from strawberry_django.permissions import IsAuthenticated

from koherent.strawberry import (
    HistoryEntryType,
    HistoryFilterMixin,
    KoherentExtension,
    KoherentMutation,
    KoherentQuery,
    history_field,
)
from shop.models import Order, OrderLine, Product
from shop.tasks import fulfil_order


@strawberry_django.filter_type(Product, lookups=True)
class ProductFilter(HistoryFilterMixin):  # products(filters: {history: {assignationId: "..."}})
    sku: strawberry.auto


@strawberry_django.filter_type(Order, lookups=True)
class OrderFilter(HistoryFilterMixin):
    customer: strawberry.auto
    status: strawberry.auto


@strawberry_django.type(Product, filters=ProductFilter)
class ProductType:
    id: strawberry.auto
    sku: strawberry.auto
    name: strawberry.auto
    price: strawberry.auto
    stock: strawberry.auto
    history: list[HistoryEntryType] = history_field()


@strawberry_django.type(OrderLine)
class OrderLineType:
    id: strawberry.auto
    product: ProductType
    quantity: strawberry.auto
    reserved: strawberry.auto


@strawberry_django.type(Order, filters=OrderFilter)
class OrderType:
    id: strawberry.auto
    customer: strawberry.auto
    status: strawberry.auto
    total: strawberry.auto
    tracking_number: strawberry.auto
    lines: list[OrderLineType]
    history: list[HistoryEntryType] = history_field()


@strawberry_django.type(User)
class UserType:
    id: strawberry.auto
    username: strawberry.auto


@strawberry.input
class LineInput:
    sku: str
    quantity: int


@strawberry.type
class Query(KoherentQuery):
    products: list[ProductType] = strawberry_django.field()
    orders: list[OrderType] = strawberry_django.field()
    order: OrderType | None = strawberry_django.field()  # order(pk: ID!)


@strawberry.type
class Mutation(KoherentMutation):
    login: UserType = strawberry_django.auth.login()  # a session, for the next requests
    logout = strawberry_django.auth.logout()

    @strawberry_django.mutation(extensions=[IsAuthenticated()], handle_django_errors=True)
    def place_order(self, customer: str, lines: list[LineInput]) -> OrderType:
        """Create an order and its lines, price it, and start its fulfilment in the
        background (a chord reserving the stock, then shipping)."""
        if not lines:
            raise ValidationError("an order needs at least one line")
        skus = {line.sku for line in lines}
        products = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
        if unknown := sorted(skus - products.keys()):
            raise ValidationError(f"unknown products: {', '.join(unknown)}")
        if any(line.quantity < 1 for line in lines):
            raise ValidationError("quantities must be at least 1")
        with transaction.atomic():
            order = Order.objects.create(customer=customer)  # history row: created
            total = Decimal("0")
            for line in lines:
                product = products[line.sku]
                OrderLine.objects.create(order=order, product=product, quantity=line.quantity)
                total += product.price * line.quantity
            order.total = total
            order.save(update_fields=["total"])  # history row: updated
            fulfil_order(order)  # sent when the transaction commits
        return order  # type: ignore[return-value]


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    extensions=[KoherentExtension, DjangoOptimizerExtension],
)
