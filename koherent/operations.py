"""Migration operations for projects upgrading from koherent 0.2.

:class:`CarryClientToApp` copies 0.2's ``client`` (a foreign key to ``authentikate.Client``)
into Koherent's ``app`` column, in the migration that is about to drop ``client``. Put it
before the ``RemoveField`` that ``makemigrations`` generated::

    from django.db import migrations
    from koherent.operations import CarryClientToApp

    class Migration(migrations.Migration):
        dependencies = [...]
        operations = [
            CarryClientToApp("historicalorder"),
            migrations.RemoveField(model_name="historicalorder", name="client"),
        ]

It refuses to run, before writing anything, when a client's id is not a valid app name: the
error names the clients and the number of rows, and the fix.

A migration plan that would drop ``client`` without carrying it first is refused before it
runs (:func:`refuse_unsafe_client_removals`, a ``pre_migrate`` receiver Koherent connects).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connections, migrations

from koherent._validation import MAX_APP_LENGTH
from koherent.upgrade import UpgradeRefused, carry_client_to_app, history_models

__all__ = ["CarryClientToApp", "client_removals_at_risk", "refuse_unsafe_client_removals"]


class CarryClientToApp(migrations.RunPython):
    """Set ``app`` from ``client.client_id`` on the rows of a history model of this app.

    ``model_name`` is the history model's name (``historicalorder``); ``client_field`` the
    foreign key's name (``client``). Reversing it does nothing (``client`` is still there).
    """

    reduces_to_sql = False

    def __init__(self, model_name: str, client_field: str = "client", **kwargs: Any) -> None:
        self.model_name = model_name
        self.client_field = client_field
        super().__init__(self._forward, migrations.RunPython.noop, **kwargs)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"model_name": self.model_name}
        if self.client_field != "client":
            kwargs["client_field"] = self.client_field
        return (self.__class__.__qualname__, [], kwargs)

    def describe(self) -> str:
        return f"Carry {self.model_name}.{self.client_field} into app (koherent 0.2 upgrade)"

    def _forward(self, apps: Any, schema_editor: Any) -> None:
        app_label = self._app_label
        model = apps.get_model(app_label, self.model_name)
        using = schema_editor.connection.alias
        found = carry_client_to_app(
            model, using=using, client_field=self.client_field, dry_run=True
        )
        if found.refused:
            raise UpgradeRefused(
                f"Cannot carry {app_label}.{self.model_name}.{self.client_field} into app: "
                f"{'; '.join(found.refused)}. An app name is letters, digits and . _ : @ / + - "
                f"(at most {MAX_APP_LENGTH} characters). Fix the client ids in authentikate's "
                f"Client table, or set app on those rows yourself, then run migrate again; "
                f"nothing was changed."
            )
        carry_client_to_app(model, using=using, client_field=self.client_field)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self._app_label = app_label
        super().database_forwards(app_label, schema_editor, from_state, to_state)


# -- the guard of migrate ----------------------------------------------------------------------


def _carried_before(operations: list[Any], index: int, model_name: str) -> bool:
    return any(
        isinstance(op, CarryClientToApp) and op.model_name.lower() == model_name
        for op in operations[:index]
    )


def _references_authentikate_client(connection: Any, cursor: Any, table: str) -> bool:
    """Whether ``table.client_id`` is 0.2's foreign key to ``authentikate.Client``."""
    from django.apps import apps

    if not apps.is_installed("authentikate"):
        return False
    label = ("authentikate", "Client")  # not a literal call: mypy's plugin would resolve it
    client_model: Any = apps.get_model(*label)
    target = client_model._meta.db_table
    constraints = connection.introspection.get_constraints(cursor, table)
    return any(
        c.get("columns") == ["client_id"] and (c.get("foreign_key") or (None,))[0] == target
        for c in constraints.values()
    )


def client_removals_at_risk(plan: Iterable[tuple[Any, bool]], using: str) -> list[str]:
    """The ``RemoveField("client")`` of Koherent history models in ``plan`` that would drop
    a client not carried into ``app`` yet, described for an error message.

    A removal preceded, in its migration, by :class:`~koherent.operations.CarryClientToApp`
    for the same model is safe, and so is one whose table has no such row.
    """
    history = {(m._meta.app_label, m._meta.model_name): m for m in history_models(using)}
    connection = connections[using]
    at_risk: list[str] = []
    for migration, backwards in plan:
        if backwards:
            continue
        operations = list(migration.operations)
        for index, op in enumerate(operations):
            if type(op).__name__ != "RemoveField" or op.name != "client":
                continue
            model_name = op.model_name.lower()
            model = history.get((migration.app_label, model_name))
            if model is None or _carried_before(operations, index, model_name):
                continue
            table = model._meta.db_table
            with connection.cursor() as cursor:
                if table not in connection.introspection.table_names(cursor):
                    continue
                columns = {
                    c.name for c in connection.introspection.get_table_description(cursor, table)
                }
                if "client_id" not in columns or not _references_authentikate_client(
                    connection, cursor, table
                ):
                    continue  # not 0.2's client (a tracked field of the same name)
                quoted = connection.ops.quote_name(table)
                condition = "client_id IS NOT NULL"
                if "app" in columns:
                    condition += " AND app IS NULL"
                cursor.execute(f"SELECT COUNT(*) FROM {quoted} WHERE {condition}")
                (count,) = cursor.fetchone()
            if count:
                at_risk.append(
                    f"{migration.app_label}.{migration.name} drops {table}.client, but "
                    f"{count} row(s) have a client that is not in app yet"
                )
    return at_risk


def refuse_unsafe_client_removals(
    sender: Any, plan: Any = None, using: str = "default", **kwargs: Any
) -> None:
    """``pre_migrate`` receiver: refuse a plan that would drop 0.2's ``client`` values."""
    at_risk = client_removals_at_risk(plan or (), using)
    if at_risk:
        raise UpgradeRefused(
            "Refusing to migrate: koherent 0.2's client column would be dropped before its "
            "values are carried into app. "
            + "; ".join(at_risk)
            + ". Put koherent.operations.CarryClientToApp('<history model>') before that "
            "RemoveField, or run python manage.py koherent_upgrade while the models still use "
            "ProvenanceField(), then migrate again (docs/upgrading.md). Nothing was migrated."
        )
