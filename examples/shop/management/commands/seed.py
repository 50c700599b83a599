"""``manage.py seed``: the catalog and a staff user, idempotently.

The user is ``DJANGO_SUPERUSER_USERNAME`` / ``DJANGO_SUPERUSER_PASSWORD`` (defaults ``alice``
and ``koherent``, for trying the example locally only). Products are created, or put back to
the catalog's price and stock, under one assignation of their own.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

import koherent
from shop.catalog import PRODUCTS
from shop.models import Product


class Command(BaseCommand):
    help = "Create the example's products and staff user (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "alice"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or "koherent"
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created or not user.check_password(password):
            user.set_password(password)
            user.save()
        with koherent.assignation(user=user, app="seed", origin="command") as ctx:
            changed = 0
            for sku, (name, price, stock) in PRODUCTS.items():
                product, created = Product.objects.get_or_create(
                    sku=sku, defaults={"name": name, "price": price, "stock": stock}
                )
                if not created and (product.name, product.price, product.stock) != (
                    name,
                    price,
                    stock,
                ):
                    product.name, product.price, product.stock = name, price, stock
                    product.save()
                    created = True
                changed += created
        written = (
            f"{changed} written under assignation {ctx.assignation_id}"
            if changed
            else "as they were"
        )
        self.stdout.write(f"seed: user {username!r}, {len(PRODUCTS)} products ({written})")
