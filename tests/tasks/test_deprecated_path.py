"""``koherent.tasks``, the deprecated path of :mod:`koherent.django_tasks`.

Celery's ``autodiscover_tasks()`` imports the ``tasks`` module of every installed app in every
worker, Koherent's included: that import must load nothing of Django's tasks framework and warn
nothing. Using a name through the old path works and warns.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import cast

import pytest

import koherent.django_tasks
import koherent.django_tasks.kwarg

ROOT = Path(__file__).resolve().parents[2]

#: Prints whether ``koherent.tasks`` was imported, what of a tasks framework (or of
#: ``koherent.django_tasks``) the import loaded, and the warnings of the process.
REPORT = textwrap.dedent(
    """
    def report(where):
        loaded = sorted(
            name for name in set(sys.modules) - before
            if name.split(".")[0] == "django_tasks"
            or name.startswith(("django.tasks", "koherent.django_tasks"))
        )
        # To the real stdout: a worker logs what is printed to sys.stdout.
        print(where, "koherent.tasks" in sys.modules, loaded, caught, file=sys.__stdout__)
    """
)

#: ``app.autodiscover_tasks()`` and the import Celery runs when a worker starts.
AUTODISCOVERY = (
    textwrap.dedent(
        """
        import os, sys, warnings

        caught = []
        # Koherent's warnings (Celery warns of its own things, running as root say).
        warnings.showwarning = lambda message, *args, **kwargs: caught.extend(
            [str(message)] if "koherent" in str(message) else []
        )
        warnings.simplefilter("always")
        import django

        django.setup()
        before = set(sys.modules)
        from celery import Celery

        app = Celery("autodiscovery", set_as_current=False)
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.autodiscover_tasks()
        app.loader.import_default_modules()
        """
    )
    + REPORT
    + "report('loader')\n"
)

#: The app module of a real worker, which reports once it is ready and then stops.
WORKER_APP = AUTODISCOVERY.replace("app.loader.import_default_modules()\n", "").replace(
    "report('loader')\n", ""
).replace(
    "caught = []", "caught = []  # the warnings of the whole worker process"
) + textwrap.dedent(
    """
        from celery.signals import worker_ready


        @worker_ready.connect
        def stop(**kwargs):
            try:
                report("worker")
            finally:
                sys.__stdout__.flush()
                os._exit(0)
        """
)


#: The settings of the processes: Koherent is the only installed app with a ``tasks`` module;
#: the tasks framework is there (Django's own, or the backport) but not used.
SETTINGS = textwrap.dedent(
    """
    SECRET_KEY = "x"
    INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "koherent"]
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    """
)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    (cwd / "autodiscovery_settings.py").write_text(SETTINGS)
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{cwd}:{ROOT}",
            # As in a Django project's celery.py: Celery's Django support then discovers the
            # ``tasks`` module of every installed app.
            "DJANGO_SETTINGS_MODULE": "autodiscovery_settings",
        },
    )


def _reported(output: str, where: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(f"{where} ")]
    return line


@pytest.mark.processes
def test_celery_autodiscovery_imports_the_old_path_without_loading_or_warning(
    tmp_path: Path,
) -> None:
    result = _run([sys.executable, "-c", AUTODISCOVERY], tmp_path)
    assert result.returncode == 0, result.stderr
    # Imported (koherent is an installed app), nothing of the tasks framework, no warning.
    assert _reported(result.stdout, "loader") == "loader True [] []"


@pytest.mark.processes
def test_a_real_celery_worker_imports_the_old_path_without_loading_or_warning(
    tmp_path: Path,
) -> None:
    (tmp_path / "autodiscovery_app.py").write_text(WORKER_APP)
    result = _run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "autodiscovery_app",
            "--broker=memory://",
            "worker",
            "--pool=solo",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert _reported(result.stdout, "worker") == "worker True [] []", result.stderr


def test_the_old_path_of_a_name_warns_and_gives_the_new_object() -> None:
    import koherent.tasks

    for name in ("audited", "task", "AuditedTask", "KWARG", "PURPOSE", "ORIGIN", "kwarg"):
        with pytest.warns(DeprecationWarning, match=rf"koherent\.django_tasks\.{name}\b"):
            value = getattr(koherent.tasks, name)
        assert value is getattr(koherent.django_tasks, name)
    with pytest.warns(DeprecationWarning, match="koherent.django_tasks"):
        from koherent.tasks import audited
    assert cast("object", audited) is koherent.django_tasks.audited


def test_the_old_path_of_a_submodule_warns_and_is_the_new_module() -> None:
    sys.modules.pop("koherent.tasks.kwarg", None)
    with pytest.warns(DeprecationWarning, match=r"koherent\.django_tasks\.kwarg\b"):
        old = importlib.import_module("koherent.tasks.kwarg")
    assert old is koherent.django_tasks.kwarg
    # The submodule named like the decorator does not hide the decorator.
    sys.modules.pop("koherent.tasks.audited", None)
    with pytest.warns(DeprecationWarning, match=r"koherent\.django_tasks\.audited\b"):
        importlib.import_module("koherent.tasks.audited")
    with pytest.warns(DeprecationWarning, match=r"koherent\.django_tasks\.audited\b"):
        from koherent.tasks import audited
    assert cast("object", audited) is koherent.django_tasks.audited


def test_other_names_are_missing_without_a_warning() -> None:
    import koherent.tasks

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not hasattr(koherent.tasks, "logger")
        with pytest.raises(AttributeError):
            koherent.tasks.nothing  # type: ignore[attr-defined]  # noqa: B018
