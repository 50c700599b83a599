"""Signal receivers that write tracked rows: async ones, reached through ``asend`` and through
``post_save`` sent by ``asave()`` in asgiref's sync thread, and a sync one."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import Signal

ticket_placed = Signal()


async def record_placed(sender: Any, ticket: Any, **kwargs: Any) -> None:
    from tests.aioapp.models import TicketEvent

    await TicketEvent.objects.acreate(reference=ticket.reference, kind="placed")


async def record_created(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    from tests.aioapp.models import TicketEvent

    if created:
        await TicketEvent.objects.acreate(reference=instance.reference, kind="created")


def record_closed(sender: Any, instance: Any, **kwargs: Any) -> None:
    from tests.aioapp.models import TicketEvent

    if instance.status == "closed":
        TicketEvent.objects.create(reference=instance.reference, kind="closed")


def connect() -> None:
    from tests.aioapp.models import Ticket

    ticket_placed.connect(record_placed, dispatch_uid="aioapp-placed")
    post_save.connect(record_created, sender=Ticket, dispatch_uid="aioapp-created")
    post_save.connect(record_closed, sender=Ticket, dispatch_uid="aioapp-closed")
