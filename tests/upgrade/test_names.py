"""koherent 0.2.0's public names: the pinned set, each working and warning with its replacement.

The set is what the 0.2.0 wheel on the package index exports (``koherent.fields``,
``models``, ``vars``, ``signals``, ``utils``, ``admin``, ``strawberry``, ``strawberry.types``);
``KoherentExtension`` kept its name and needs no entry. ``test_upgrade_020.py`` checks the same
names in a project that 0.2.0 built.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from types import GenericAlias
from typing import Any

import pytest
import strawberry
from django.db import models
from django.test.utils import isolate_apps

import koherent
from koherent.legacy import DEPRECATED, DEPRECATED_MODULES
from tests.testapp.models import Order

#: Pinned: adding or dropping a 0.2.0 name must be a deliberate change of this list.
NAMES_020 = {
    ("koherent.fields", "ProvenanceField"),
    ("koherent.fields", "GenericRelation"),
    ("koherent.models", "ProvenanceEntryModel"),
    ("koherent.vars", "current_assignation_id"),
    ("koherent.vars", "get_current_assignation_id"),
    ("koherent.signals", "add_history_app"),
    ("koherent.utils", "get_assignation_id_or_none"),
    ("koherent.admin", "KoherentAdmin"),
    ("koherent.strawberry", "ProvenanceEntry"),
    ("koherent.strawberry.types", "ProvenanceEntry"),
    ("koherent.strawberry.types", "HistoryKind"),
    ("koherent.strawberry.types", "ModelChange"),
}
MODULES_020 = {"koherent.vars", "koherent.signals", "koherent.utils"}


def old(module: str, name: str) -> Any:
    """``module.name``, asserting the DeprecationWarning that names its replacement."""
    replacement = DEPRECATED[(module, name)][0]
    with pytest.warns(DeprecationWarning, match=re.escape(replacement)) as caught:
        value = getattr(importlib.import_module(module), name)
    assert any(f"{module}.{name} is a koherent 0.2 name" in str(w.message) for w in caught)
    return value


def test_the_set_of_020_names_is_pinned() -> None:
    assert set(DEPRECATED) == NAMES_020
    assert set(DEPRECATED_MODULES) == MODULES_020


@pytest.mark.parametrize(("module", "name"), sorted(NAMES_020))
def test_each_020_name_resolves_and_warns(module: str, name: str) -> None:
    assert old(module, name) is not None


def test_unknown_names_still_raise_attribute_error() -> None:
    import koherent.fields

    with pytest.raises(AttributeError, match="NotAName"):
        koherent.fields.NotAName  # noqa: B018
    with pytest.raises(AttributeError):
        importlib.import_module("koherent.admin").NotAdmin  # noqa: B018


@pytest.mark.parametrize("module", sorted(MODULES_020))
def test_importing_a_020_module_warns(module: str) -> None:
    sys.modules.pop(module, None)
    with pytest.warns(DeprecationWarning, match=re.escape(f"the module {module}")):
        importlib.import_module(module)


def test_koherent_signal_still_imports_without_a_warning() -> None:
    sys.modules.pop("koherent.signal", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        importlib.import_module("koherent.signal")


def test_provenance_field_keeps_020_related_name_and_table() -> None:
    provenance_field = old("koherent.fields", "ProvenanceField")
    with isolate_apps("tests.testapp"):

        class Shelf(models.Model):
            name = models.CharField(max_length=10)
            provenance = provenance_field()

            class Meta:
                app_label = "testapp"

        history = Shelf.provenance.model
        assert history._meta.db_table == "testapp_historicalshelf"
        relation = history._meta.get_field("history_relation")
        assert relation.remote_field.related_name == "provenance_entries"
        assert issubclass(history, old("koherent.models", "ProvenanceEntryModel"))
        # authentikate is not installed here, so there is no client column to keep.
        assert not any(f.name == "client" for f in history._meta.get_fields())
        assert {"assignation_id", "app", "user_pk", "task_id"} <= {
            f.name for f in history._meta.get_fields()
        }
        assert history._meta.get_field("assignation_id").max_length == 1000


def test_generic_relation_is_djangos() -> None:
    from django.contrib.contenttypes.fields import GenericRelation

    assert old("koherent.fields", "GenericRelation") is GenericRelation


def test_admin_class_is_the_history_admin() -> None:
    from koherent.admin.core import KoherentHistoryAdmin

    assert old("koherent.admin", "KoherentAdmin") is KoherentHistoryAdmin


@pytest.mark.django_db
def test_020_context_variable_sets_and_resets_the_assignation(user: Any) -> None:
    var = old("koherent.vars", "current_assignation_id")
    get = old("koherent.vars", "get_current_assignation_id")
    with koherent.context(user=user, app="lab"):
        token = var.set("set-the-020-way")
        assert (var.get(), get()) == ("set-the-020-way", "set-the-020-way")
        Order.objects.create(reference="A")
        var.reset(token)
        assert var.get() is None
        Order.objects.create(reference="B")
    first, second = Order.history.order_by("history_id")
    assert (first.assignation_id, first.user_pk, first.app) == (
        "set-the-020-way",
        str(user.pk),
        "lab",
    )
    assert second.assignation_id is None  # reset really resets
    with pytest.raises(ValueError, match="not allowed"):
        var.set("has spaces")


@pytest.mark.django_db
def test_020_signal_receiver_fills_a_row_from_the_context(user: Any) -> None:
    add_history_app = old("koherent.signals", "add_history_app")
    order = Order.objects.create(reference="A")
    row = Order.history.model(id=order.pk, reference="A", history_type="~")
    row.assignation_id = row.app = row.history_user = None
    with koherent.assignation(user=user, app="lab") as ctx:
        add_history_app(sender=Order, history_instance=row)
    assert (row.assignation_id, row.app, row.history_user) == (ctx.assignation_id, "lab", user)


def test_020_header_reader_reads_and_validates() -> None:
    read = old("koherent.utils", "get_assignation_id_or_none")
    assert read({"x-assignation-id": "abc-1"}) == "abc-1"
    assert read({"X-Assignation-ID": " abc-2 "}) == "abc-2"
    assert read({"authorization": "x"}) is None
    with pytest.raises(ValueError, match="not allowed"):
        read({"x-assignation-id": "../etc"})


@pytest.mark.django_db
def test_020_graphql_types_serve_history_rows(user: Any) -> None:
    provenance_entry = old("koherent.strawberry", "ProvenanceEntry")
    assert old("koherent.strawberry.types", "ProvenanceEntry") is provenance_entry
    history_kind = old("koherent.strawberry.types", "HistoryKind")
    assert old("koherent.strawberry.types", "ModelChange").__name__ == "ModelChange"
    with koherent.assignation(user=user, app="lab") as ctx:
        order = Order.objects.create(reference="A", total=1)
        order.total = 2
        order.save()

    def entries() -> list[Any]:
        return list(Order.history.order_by("history_id"))

    query = type(
        "Query",
        (),
        {
            "entries": strawberry.field(
                resolver=entries, graphql_type=GenericAlias(list, (provenance_entry,))
            )
        },
    )
    Query = strawberry.type(query)
    schema = strawberry.Schema(query=Query, types=[history_kind])
    result = schema.execute_sync(
        "{ entries { kind during app user { username } effectiveChanges { field oldValue "
        "newValue } } }"
    )
    assert result.errors is None, result.errors
    created, updated = result.data["entries"]  # type: ignore[index]
    assert (created["kind"], updated["kind"]) == ("CREATE", "UPDATE")
    assert created["during"] == ctx.assignation_id
    assert created["app"] == "lab"
    assert created["user"] == {"username": user.username}
    assert created["effectiveChanges"] == []
    assert {"field": "total", "oldValue": "1", "newValue": "2"} in updated["effectiveChanges"]
