"""Trigger capture of a table in a PostgreSQL schema of its own (``db_table =
'"schema"."table"'``) and of a model the router sends to a second PostgreSQL database: each
write is stamped from the context, and a write without context right after one with it, in
the same transaction, is unattributed."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.models import F

import koherent
from koherent.capture import capture_mode
from koherent.models import Assignation
from tests.capture.models import Placed, Routed
from tests.capture.support import UNATTRIBUTED, rows, stamp

ROUTER = "tests.capture.router.RoutedCaptureRouter"


def _stamp_of(user: Any, app: str, assignation_id: str) -> tuple[Any, ...]:
    return (user.pk, str(user.pk), app, assignation_id, None)


def _schema_of(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %s",
            [table],
        )
        return str(cursor.fetchone()[0])


@pytest.mark.django_db
def test_a_table_in_another_schema(user: Any) -> None:
    assert capture_mode(Placed) == "trigger"
    assert _schema_of("capture_placed") == "koherent_other"
    assert _schema_of("capture_historicalplaced") == "koherent_other"
    with transaction.atomic():
        with koherent.assignation("a-schema", user=user, app="one"):
            placed = Placed.objects.create(name="p", price=1)
            Placed.objects.filter(pk=placed.pk).update(price=F("price") + 1)
            with connection.cursor() as cursor:  # raw SQL: only a trigger sees it
                cursor.execute(
                    'UPDATE "koherent_other"."capture_placed" SET price = 5 WHERE id = %s',
                    [placed.pk],
                )
        Placed.objects.filter(pk=placed.pk).update(price=6)  # no context any more
    history = rows(Placed)
    assert [(r.history_type, r.price) for r in history] == [("+", 1), ("~", 2), ("~", 5), ("~", 6)]
    assert [stamp(r) for r in history[:3]] == [_stamp_of(user, "one", "a-schema")] * 3
    assert stamp(history[3]) == UNATTRIBUTED
    assert Assignation.objects.filter(pk="a-schema").exists()


@pytest.mark.django_db(databases=["default", "other"])
def test_a_model_routed_to_a_second_database(user: Any, settings: Any) -> None:
    settings.DATABASE_ROUTERS = [ROUTER]
    assert capture_mode(Routed) == "trigger"
    other = connections["other"]
    with transaction.atomic(using="other"):
        with koherent.assignation("a-routed", user=user, app="one"):
            routed = Routed.objects.create(name="r", price=1)
            Routed.objects.filter(pk=routed.pk).update(price=F("price") + 1)
            with other.cursor() as cursor:  # raw SQL: only a trigger sees it
                cursor.execute("UPDATE capture_routed SET price = 5 WHERE id = %s", [routed.pk])
        Routed.objects.filter(pk=routed.pk).update(price=6)  # no context any more
    history = rows(Routed)  # read where the router sends the history: ``other``
    assert [(r.history_type, r.price) for r in history] == [("+", 1), ("~", 2), ("~", 5), ("~", 6)]
    assert [stamp(r) for r in history[:3]] == [_stamp_of(user, "one", "a-routed")] * 3
    assert stamp(history[3]) == UNATTRIBUTED
    # Nothing landed on the default database; the record is where the router keeps records.
    assert not Routed.objects.using("default").exists()
    assert not Routed.history.using("default").exists()
    assert Assignation.objects.using("default").filter(pk="a-routed").exists()
    assert not Assignation.objects.using("other").exists()
