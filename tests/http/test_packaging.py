"""Each client's module needs only its own client; koherent.django_tasks says what it needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

ROOT = Path(__file__).parents[2]

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name in BLOCKED or name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Block())
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="x",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "koherent"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        KOHERENT={"OUTGOING_HOSTS": ["api.internal"]},
    )
    django.setup()
    import koherent
    """
)

WITH_HTTPX = """
import httpx
import koherent.http.httpx

request = httpx.Request("GET", "https://api.internal/x")
with koherent.assignation() as ctx:
    koherent.http.httpx.apply(request)
assert request.headers["X-Assignation-ID"] == ctx.assignation_id
print("httpx works")
"""

WITH_REQUESTS = """
import requests
import koherent.http.requests

request = requests.Request("GET", "https://api.internal/x").prepare()
with koherent.assignation() as ctx:
    koherent.http.requests.apply(request)
assert request.headers["X-Assignation-ID"] == ctx.assignation_id
print("requests works")
"""

WITHOUT_FRAMEWORK = """
import koherent.django_tasks as tasks  # imports without a tasks framework
from django.core.exceptions import ImproperlyConfigured

for use in (lambda: tasks.task(print), lambda: tasks.audited(print)):
    try:
        use()
    except ImproperlyConfigured as exc:
        print(exc)
    else:
        raise AssertionError("koherent.django_tasks used without a tasks framework")
"""

CELERY_AUTODISCOVERY = """
from celery import Celery

app = Celery("autodiscovery", set_as_current=False)
app.autodiscover_tasks(["koherent"], force=True)
print("autodiscovered", sorted(name for name in app.tasks if not name.startswith("celery.")))
"""


def run(blocked: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code, blocked],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def test_httpx_module_without_requests() -> None:
    result = run("requests", WITH_HTTPX)
    assert result.returncode == 0, result.stderr
    assert "httpx works" in result.stdout


def test_requests_module_without_httpx() -> None:
    result = run("httpx,httpcore", WITH_REQUESTS)
    assert result.returncode == 0, result.stderr
    assert "requests works" in result.stdout


@pytest.mark.parametrize(("blocked", "code"), [("httpx", WITH_HTTPX), ("requests", WITH_REQUESTS)])
def test_blocker_really_blocks(blocked: str, code: str) -> None:
    """Negative control: each module fails when its own client is blocked."""
    result = run(blocked, code)
    assert result.returncode != 0
    assert "blocked by the test" in result.stderr


def test_tasks_without_a_framework_imports_and_says_what_to_install_when_used() -> None:
    result = run("django_tasks,django.tasks", WITHOUT_FRAMEWORK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("koherent[tasks]") == 2


def test_celery_autodiscovery_of_koherent_without_a_tasks_framework() -> None:
    """A Celery worker discovers every installed app's ``tasks`` module, Koherent's too."""
    result = run("django_tasks,django.tasks", CELERY_AUTODISCOVERY)
    assert result.returncode == 0, result.stderr
    assert "autodiscovered []" in result.stdout
