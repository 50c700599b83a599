"""``koherent_history`` and ``koherent_revert``: output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

import koherent
from koherent.models import Assignation
from tests.undo.scenario import Scenario, snapshot
from tests.undoapp.models import Hold, Invoice, Line

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_history_prints_a_table(scenario: Scenario, user: Any) -> None:
    out, _ = run("koherent_history", scenario.assignation_id)
    lines = out.splitlines()
    assert lines[0].startswith(f"Assignation {scenario.assignation_id}: user {user.pk}, app shop")
    assert lines[1].split()[:8] == [
        "date",
        "(UTC)",
        "change",
        "object",
        "user",
        "app",
        "task",
        "fields",
    ]
    count = koherent.history_for_assignation(scenario.assignation_id).count()
    assert lines[-1] == f"{count} change(s)"
    body = lines[3:-1]
    assert len(body) == count
    assert f"undoapp.Invoice {scenario.kept.pk}" in body[0]
    assert "status: draft → sent; total: 10 → 11" in body[0]
    assert any(" delete " in line and "product=pear" in line for line in body)
    assert any(" create " in line and "number=C-1" in line for line in body)


def _starts(header: str) -> list[int]:
    names = ["date (UTC)", "change", "object", "user", "app", "task", "fields"]
    return [header.index(name) for name in names]


def test_history_table_columns_line_up(user: Any) -> None:
    task_id = "0f4c7a5e-8d0b-4c1e-9a59-1d2e3f4a5b6c"  # a Celery task id: 36 characters
    with (
        koherent.context(task_id=task_id),
        koherent.assignation(user=user, app="a-rather-long-app-name") as ctx,
    ):
        invoice = Invoice.objects.create(number="ALIGN-1", total=1)
        invoice.total = 2
        invoice.save()
    Invoice.objects.filter(pk=invoice.pk).delete()
    assert ctx.assignation_id is not None
    for batch in ("500", "1"):  # one batch, and a batch per row
        out, _ = run("koherent_history", ctx.assignation_id, "--batch-size", batch)
        lines = out.splitlines()
        starts = _starts(lines[1])
        body = lines[3:-1]
        assert len(body) == 2
        for line in body if batch == "500" else body[:1]:
            # every cell starts at its header's column, after two spaces of gap
            for start in starts[1:]:
                assert line[start - 2 : start] == "  ", (line, start)
                assert line[start] != " ", (line, start)
            assert line[: len("2000-01-01 00:00:00.000000")].count(":") == 2
        assert task_id in body[0]
        assert "a-rather-long-app-name" in body[0]


def test_history_json(scenario: Scenario) -> None:
    out, _ = run("koherent_history", scenario.assignation_id, "--json", "--batch-size", "3")
    document = json.loads(out)
    assert document["assignation"]["id"] == scenario.assignation_id
    assert document["assignation"]["app"] == "shop"
    changes = document["changes"]
    assert len(changes) == koherent.history_for_assignation(scenario.assignation_id).count()
    first = changes[0]
    assert (first["kind"], first["model"], first["object_id"]) == (
        "UPDATE",
        "undoapp.Invoice",
        scenario.kept.pk,
    )
    assert {"field": "total", "old": 10, "new": 11} in first["fields"]
    assert [c["date"] for c in changes] == sorted(c["date"] for c in changes)


def test_history_of_an_unknown_assignation_fails() -> None:
    with pytest.raises(CommandError, match="unknown assignation 'nope'") as caught:
        run("koherent_history", "nope")
    assert caught.value.returncode == 1


def test_history_of_an_assignation_without_rows() -> None:
    Assignation.objects.create(id="quiet", app="x")
    out, _ = run("koherent_history", "quiet")
    assert out.splitlines()[-1] == "0 change(s)"


def test_revert_dry_run_prints_the_plan(scenario: Scenario) -> None:
    out, _ = run("koherent_revert", scenario.assignation_id, "--dry-run")
    assert "3 to delete, 2 to restore, 3 to re-create" in out
    assert f"  restore undoapp.Invoice {scenario.kept.pk} (status, total, labels)" in out
    assert f"  delete undoapp.Invoice {scenario.created.pk}" in out
    assert "Dry run: nothing was written." in out
    assert snapshot() == scenario.after


def test_revert_prints_the_result(scenario: Scenario, other_user: Any) -> None:
    out, err = run(
        "koherent_revert", scenario.assignation_id, "--user", "bob", "--app", "ops", "--yes"
    )
    assert snapshot() == scenario.before
    record = Assignation.objects.get(origin="revert")
    assert (record.user_pk, record.app, record.parent_id) == (
        str(other_user.pk),
        "ops",
        scenario.assignation_id,
    )
    assert out.strip() == (
        f"Reverted {scenario.assignation_id} as {record.pk}: 3 deleted, 2 restored, 3 re-created."
    )
    assert err == ""  # small: no progress bar


def test_revert_conflicts_exit_2_and_force_overrides(scenario: Scenario) -> None:
    with koherent.assignation() as later:
        Invoice.objects.get(pk=scenario.kept.pk).save()
    for args in (("--yes",), ("--dry-run",)):
        with pytest.raises(CommandError) as caught:
            run("koherent_revert", scenario.assignation_id, *args)
        assert caught.value.returncode == 2
        assert f"was changed later by {later.assignation_id}" in str(caught.value)
        assert "--force" in str(caught.value)
    assert snapshot() == scenario.after
    out, _ = run("koherent_revert", scenario.assignation_id, "--force", "--yes")
    assert "1 conflict(s) overridden:" in out
    assert snapshot() == scenario.before


def test_a_protected_relation_refuses_the_revert_also_forced_and_dry_run() -> None:
    with koherent.assignation() as ctx:
        invoice = Invoice.objects.create(number="H-1")
    Hold.objects.create(invoice=invoice, reason="audit")  # outside the assignation
    assert ctx.assignation_id is not None
    for args in (("--dry-run",), ("--dry-run", "--force"), ("--force", "--yes")):
        with pytest.raises(CommandError) as caught:
            run("koherent_revert", ctx.assignation_id, *args)
        assert caught.value.returncode == 2, args
        assert "H-1" in str(caught.value) or "protect" in str(caught.value).lower(), args
    assert Invoice.objects.filter(pk=invoice.pk).exists()


def test_revert_twice_exits_2(scenario: Scenario) -> None:
    run("koherent_revert", scenario.assignation_id, "--yes")
    with pytest.raises(CommandError, match="already reverted") as caught:
        run("koherent_revert", scenario.assignation_id, "--yes")
    assert caught.value.returncode == 2


def test_revert_usage_errors_exit_1() -> None:
    for args in (("nope",), ("bad id",), ("x", "--user", "nobody")):
        with pytest.raises(CommandError) as caught:
            run("koherent_revert", *args, "--yes")
        assert caught.value.returncode == 1, args


def test_revert_refused_by_the_database_exits_3() -> None:
    with koherent.assignation():
        invoice = Invoice.objects.create(number="U-1")
        Line.objects.create(invoice=invoice, position=1, product="a")
    with koherent.assignation() as ctx:
        Line.objects.get(invoice=invoice, position=1).delete()
    Line.objects.create(invoice=invoice, position=1, product="taken")
    with pytest.raises(CommandError, match="nothing was changed") as caught:
        run("koherent_revert", ctx.assignation_id or "", "--yes")
    assert caught.value.returncode == 3


def _bulk_updated_lines(count: int) -> str:
    from simple_history.utils import bulk_create_with_history, bulk_update_with_history

    with koherent.assignation():
        invoice = Invoice.objects.create(number=f"big-{count}")
        bulk_create_with_history(
            [Line(invoice=invoice, position=n, product="p") for n in range(count)], Line
        )
    lines = list(Line.objects.filter(invoice=invoice))
    with koherent.assignation() as ctx:
        for line in lines:
            line.quantity = 3
        bulk_update_with_history(lines, Line, ["quantity"])
    return ctx.assignation_id or ""


def test_large_reverts_show_a_progress_bar() -> None:
    large = _bulk_updated_lines(250)
    _, err = run("koherent_revert", large, "--dry-run")
    assert err == ""
    out, err = run("koherent_revert", large, "--yes")
    assert "restore" in err
    assert "100% 250/250" in err
    assert "250 restored" in out
    assert set(Line.objects.values_list("quantity", flat=True)) == {1}
    quiet = _bulk_updated_lines(260)
    quiet_out, quiet_err = run("koherent_revert", quiet, "--no-progress", "--yes")
    assert quiet_err == ""
    assert "260 restored" in quiet_out


@pytest.mark.processes
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_exit_codes_of_the_real_command(scenario: Scenario) -> None:
    settings = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "KOHERENT_TEST_DB": "postgres",
        "DATABASE_URL": (
            f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/"
            f"{settings['NAME']}"
        ),
        "PYTHONPATH": str(ROOT),
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )

    unknown = manage("koherent_revert", "nope", "--yes")
    assert unknown.returncode == 1
    assert "unknown assignation 'nope'" in unknown.stderr
    with koherent.assignation():
        Invoice.objects.get(pk=scenario.kept.pk).save()
    refused = manage("koherent_revert", scenario.assignation_id, "--yes")
    assert refused.returncode == 2, refused.stderr
    assert "conflict" in refused.stderr
    # No terminal (stdin is /dev/null here) and no --yes: refused, nothing read or written.
    unconfirmed = manage("koherent_revert", scenario.assignation_id, "--force")
    assert unconfirmed.returncode == 1, unconfirmed.stderr
    assert "pass --yes" in unconfirmed.stderr
    assert snapshot() == scenario.after
    # With Django's default logging, the revert's WARNING reaches stderr: the logger is on.
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings_default_logging"
    done = manage("koherent_revert", scenario.assignation_id, "--force", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"reverted assignation {scenario.assignation_id} via command" in done.stderr
    assert snapshot() == scenario.before
    shown = manage("koherent_history", scenario.assignation_id, "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["assignation"]["id"] == scenario.assignation_id


def test_history_function_outside_postgresql_says_there_is_none() -> None:
    """On PostgreSQL the command is tested with the function (test_history_function.py)."""
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL has the function: tests/undo/test_history_function.py")
    out, _ = run("koherent_history_function", "--drop-stale")
    assert out.splitlines() == [
        "Database default: history is read without a function here.",
        "No function of earlier code.",
    ]


def test_history_function_refuses_an_unknown_database() -> None:
    with pytest.raises(CommandError, match="unknown database 'nowhere'"):
        run("koherent_history_function", "--database", "nowhere")
