"""Drop the ``varchar_pattern_ops`` indexes PostgreSQL's schema editor adds to the record table.

Django gives every indexed ``varchar`` column on PostgreSQL a second index, ``<name>_like``,
for ``LIKE 'prefix%'`` lookups outside the C locale. Koherent never looks records up that way
(the admin's search is ``icontains``, which no such index serves), and the four of them — on
the id, ``app``, ``origin`` and ``parent`` — were a third of the work of writing a record, which
every request and task that opens an assignation does once (about 20 µs of 44 on the benchmark
machine). Other databases have no such indexes: nothing happens there. Reversing the migration
creates them again.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

#: The record's fields Django gives a ``_like`` index on PostgreSQL.
FIELDS = ("id", "app", "origin", "parent")


def _like_indexes(apps: Any, schema_editor: Any) -> list[tuple[Any, Any, str]]:
    model = apps.get_model("koherent", "Assignation")
    table = model._meta.db_table
    found = []
    for name in FIELDS:
        field = model._meta.get_field(name)
        index = schema_editor._create_index_name(table, [field.column], suffix="_like")
        found.append((model, field, index))
    return found


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, _field, index in _like_indexes(apps, schema_editor):
        schema_editor.execute(schema_editor._delete_index_sql(model, index))


def create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, field, _index in _like_indexes(apps, schema_editor):
        sql = schema_editor._create_like_index_sql(model, field)
        if sql is not None:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("koherent", "0003_assignation_models"),
    ]

    operations = [
        migrations.RunPython(drop, create, elidable=True),
    ]
