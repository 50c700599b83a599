"""The GraphQL integration needs Channels only for websockets."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

ROOT = Path(__file__).parents[2]

WITHOUT_CHANNELS = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {"channels", "daphne"}:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Block())
    from koherent.strawberry import KoherentExtension  # before settings: no app registry
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="x",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "koherent"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        KOHERENT={"APP": "no-channels"},
    )
    django.setup()
    import strawberry
    from django.test import RequestFactory

    @strawberry.type
    class Query:
        @strawberry.field
        def app(self) -> str:
            import koherent
            return koherent.get_current_app()

    schema = strawberry.Schema(query=Query, extensions=[KoherentExtension])
    result = schema.execute_sync("{ app }", context_value={"request": RequestFactory().get("/")})
    assert result.data == {"app": "no-channels"}, result
    try:
        import koherent.strawberry.websocket
    except ModuleNotFoundError as exc:
        assert "channels" in str(exc), exc
    else:
        raise AssertionError("the websocket consumer imported without Channels")
    print("works without channels")
    """
)


def test_the_extension_works_without_channels() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_CHANNELS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "works without channels" in result.stdout
