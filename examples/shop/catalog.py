"""The products the example starts with (``manage.py seed`` writes them)."""

from __future__ import annotations

from decimal import Decimal

#: sku -> (name, price, stock)
PRODUCTS: dict[str, tuple[str, Decimal, int]] = {
    "MUG": ("Koherent mug", Decimal("9.50"), 10),
    "TEE": ("Koherent t-shirt", Decimal("19.00"), 10),
    "CAP": ("Koherent cap", Decimal("14.00"), 10),
}

#: Products with less stock than this are restocked by the beat job.
LOW_STOCK = 5
#: How many units the beat job adds.
RESTOCK_UNITS = 20
