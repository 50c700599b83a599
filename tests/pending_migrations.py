"""What ``makemigrations`` would write for the test apps, in either capture mode.

The test apps' migrations serve both capture modes of the suite (``KOHERENT_TEST_CAPTURE``):
they hold the models, not the triggers. On signal capture nothing is left to write; on trigger
capture exactly the three ``AddTrigger`` operations of each model the triggers capture, which
the suite installs without migrations (``tests/conftest.py``) and which a project switching to
triggers gets from ``makemigrations``.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.commands import makemigrations
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.questioner import NonInteractiveMigrationQuestioner
from django.db.migrations.state import ProjectState

from koherent.capture import MODE_ATTRIBUTE

#: (app label, operation class, model name, trigger name or "").
Operation = tuple[str, str, str, str]

TRIGGER_NAMES = ("koherent_insert", "koherent_update", "koherent_delete")


def pending_operations(*app_labels: str) -> list[Operation]:
    """The operations ``makemigrations`` would write for ``app_labels`` now."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    labels = set(app_labels)
    # pgtrigger's autodetector (it adds the trigger operations) when pgtrigger is installed.
    autodetector = makemigrations.MigrationAutodetector(  # type: ignore[attr-defined]
        loader.project_state(),
        ProjectState.from_apps(apps),
        NonInteractiveMigrationQuestioner(specified_apps=labels, dry_run=True),
    )
    changes = autodetector.changes(graph=loader.graph, trim_to_apps=labels, convert_apps=labels)
    return sorted(
        (
            label,
            type(operation).__name__,
            str(getattr(operation, "model_name", getattr(operation, "name", ""))).lower(),
            str(getattr(getattr(operation, "trigger", None), "name", "")),
        )
        for label, migrations in changes.items()
        for migration in migrations
        for operation in migration.operations
    )


def trigger_operations(*app_labels: str) -> list[Operation]:
    """The ``AddTrigger`` operations of the trigger-captured models of ``app_labels`` (none on
    signal capture)."""
    return sorted(
        (label, "AddTrigger", model._meta.model_name or "", name)
        for label in app_labels
        for model in apps.get_app_config(label).get_models()
        if getattr(model, MODE_ATTRIBUTE, None) == "trigger"
        and not model._meta.proxy
        and not model._meta.parents
        for name in TRIGGER_NAMES
    )


def assert_in_sync(*app_labels: str) -> None:
    """``makemigrations`` has nothing to write for ``app_labels`` but the triggers."""
    assert pending_operations(*app_labels) == trigger_operations(*app_labels)
