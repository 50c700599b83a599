"""Triggers come and go with the migrations makemigrations writes; switching a model between
signal and trigger capture keeps its history; tables made without migrations get them too."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from tests.capture.models import Switch
from tests.capture.support import raw, rows

ROOT = Path(__file__).resolve().parents[2]


def triggers_on(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal "
            "ORDER BY tgname",
            [table],
        )
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.django_db
def test_makemigrations_has_nothing_left_to_write() -> None:
    out = StringIO()
    call_command("makemigrations", "capture", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_migrating_back_and_forth_switches_capture_and_keeps_every_row() -> None:
    names = triggers_on("capture_switch")
    assert [n.rsplit("_", 1)[0] for n in names] == [
        "pgtrigger_koherent_delete",
        "pgtrigger_koherent_insert",
        "pgtrigger_koherent_update",
    ]
    switch = Switch.objects.create(name="s", level=1)
    raw(f"UPDATE capture_switch SET level = 2 WHERE id = {switch.pk}")
    assert len(rows(Switch)) == 2
    try:
        call_command("migrate", "capture", "0001", verbosity=0)
        assert triggers_on("capture_switch") == []
        assert len(triggers_on("capture_product")) == 3  # other models keep theirs
        raw(f"UPDATE capture_switch SET level = 3 WHERE id = {switch.pk}")
        # Kept; the raw write unseen. (Read in SQL: at 0001 the history table has no
        # history_changed_fields column yet, which the model's queries select.)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT level FROM capture_historicalswitch ORDER BY history_date, history_id"
            )
            assert [level for (level,) in cursor.fetchall()] == [1, 2]
    finally:
        call_command("migrate", "capture", verbosity=0)
    assert triggers_on("capture_switch") == names
    raw(f"UPDATE capture_switch SET level = 4 WHERE id = {switch.pk}")
    assert [r.level for r in rows(Switch)] == [1, 2, 4]


@pytest.mark.slow
@pytest.mark.processes
def test_tables_created_without_migrations_get_their_triggers(tmp_path: Path) -> None:
    """pytest-django's --nomigrations creates tables from the models: pgtrigger's schema
    editor installs their triggers with them."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import pytest\n"
        "from django.db.models import F\n"
        "import koherent\n"
        "from tests.capture.models import Product\n\n"
        "@pytest.mark.django_db\n"
        "def test_probe():\n"
        "    p = Product.objects.create(name='n', price=1)\n"
        "    with koherent.assignation('nomig', app='probe'):\n"
        "        Product.objects.filter(pk=p.pk).update(price=F('price') + 1)\n"
        "    rows = list(Product.history.order_by('history_id'))\n"
        "    assert [(r.history_type, r.assignation_id) for r in rows] == "
        "[('+', None), ('~', 'nomig')]\n"
    )
    base = connection.settings_dict
    url = (
        f"postgres://{base.get('USER') or 'postgres'}@{base.get('HOST') or '127.0.0.1'}:"
        f"{base.get('PORT') or 5432}/koherent_capture_nomigrations_{os.getpid()}"
    )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "KOHERENT_TEST_DB": "postgres",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("KOHERENT_TEST_DB_NAME", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--nomigrations",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            "-q",
            str(probe),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
