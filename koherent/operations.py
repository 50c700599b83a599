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
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from koherent.upgrade import UpgradeRefused, carry_client_to_app
from koherent.validation import MAX_APP_LENGTH


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
