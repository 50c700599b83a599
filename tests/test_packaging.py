"""The package: importable without its extras, migrations in sync, the 0.2 idioms."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import koherent
from tests.pending_migrations import assert_in_sync

ROOT = Path(__file__).parents[1]

NO_EXTRAS = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {
        "celery", "kombu", "billiard", "strawberry", "strawberry_django", "graphql",
        "channels", "daphne", "structlog", "httpx", "httpcore", "requests", "urllib3",
        "django_tasks", "django_tasks_db",
    }

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Block())

    import koherent  # before settings: must not need the app registry
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="x",
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
            "simple_history", "koherent", "tests.testapp",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        AUTH_USER_MODEL="testapp.User",
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "koherent.middleware.KoherentMiddleware",
        ],
        ROOT_URLCONF="tests.urls_core",
    )
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    call_command("check")
    import koherent.middleware, koherent.resolvers, koherent.checks, koherent.aio, koherent.log
    import koherent.http
    from tests.testapp.models import Order

    with koherent.assignation(app="no-extras") as ctx:
        Order.objects.create(reference="x")
    row = Order.history.get()
    assert (row.assignation_id, row.app) == (ctx.assignation_id, "no-extras"), row
    assert koherent.Assignation.objects.get().id == ctx.assignation_id
    from django.test import Client
    response = Client().get("/whoami/", headers={"X-Assignation-ID": "core-op"})
    assert response.json()["assignation_id"] == "core-op", response.content
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    print("core works without extras")
    """
)


@pytest.mark.processes
def test_core_works_without_the_extras() -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_EXTRAS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "core works without extras" in result.stdout


@pytest.mark.processes
def test_blocker_really_blocks() -> None:
    """Negative control: the same blocker makes an import of celery fail."""
    code = NO_EXTRAS.split("import koherent  #")[0] + "import celery\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "blocked by the test" in result.stderr


@pytest.mark.django_db
def test_migrations_are_in_sync() -> None:
    assert_in_sync("koherent", "testapp", "multidbapp")


def test_version_from_metadata() -> None:
    from importlib.metadata import version

    assert koherent.__version__ == version("koherent")


def test_koherent_02_idioms_still_work() -> None:
    import koherent.signal
    from koherent.fields import HistoricForeignKey, HistoryField
    from koherent.models import KoherentHistoryModel

    assert koherent.HistoryField is HistoryField
    assert koherent.HistoricForeignKey is HistoricForeignKey
    assert koherent.KoherentHistoryModel is KoherentHistoryModel


def test_public_api_is_curated() -> None:
    for name in koherent.__all__:
        assert getattr(koherent, name) is not None
    with pytest.raises(AttributeError):
        koherent.not_a_name  # noqa: B018


def test_clashing_field_names_are_refused() -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.db import models
    from django.test.utils import isolate_apps

    from koherent.fields import HistoryField

    with isolate_apps("tests.testapp"), pytest.raises(ImproperlyConfigured, match="app"):

        class Clashing(models.Model):
            app = models.CharField(max_length=10)
            history = HistoryField()

            class Meta:
                app_label = "testapp"
