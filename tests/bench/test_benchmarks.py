"""The benchmarks cannot rot: every scenario runs at a tiny size, end to end, and reports.

No timing is asserted (the machine decides those); what is asserted is that every scenario
ran every contender, that each contender really wrote its history (so no contender is timed
doing less than the others), and that the report and the README table are produced.
The benchmark project runs in a subprocess with its own settings and databases
(``<DATABASE_URL name>_bench_tiny_*``, dropped afterwards).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import services

ROOT = Path(__file__).resolve().parents[2]
PEERS = ("auditlog", "reversion", "pghistory", "pgtrigger", "django_guid")

pytestmark = [pytest.mark.processes, pytest.mark.postgres]


def _peers_missing() -> list[str]:
    return [name for name in PEERS if importlib.util.find_spec(name) is None]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = _peers_missing()
    if missing:
        if os.environ.get("KOHERENT_BENCH_OPTIONAL") == "1":
            pytest.skip(f"benchmark peers not installed here: {', '.join(missing)}")
        pytest.fail(f"the bench extra is not installed ({', '.join(missing)}): run make setup")
    services.need("redis")
    out = tmp_path_factory.mktemp("bench")
    readme = out / "README.md"
    readme.write_text("# Project\n\nIntro.\n\n## Development\n\nmake test\n")
    command = [sys.executable, "-m", "benchmarks", "--size", "tiny", "--out-dir", str(out)]
    command += ["--readme", str(readme)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr[-5000:]
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    results["_markdown"] = (out / "results.md").read_text()
    results["_readme"] = readme.read_text()
    return results


def _scenario(results: dict[str, Any], name: str) -> dict[str, Any]:
    scenario: dict[str, Any] = results["scenarios"][name]
    assert scenario["status"] == "ok", scenario
    return scenario


def test_every_scenario_ran_every_contender(tiny_run: dict[str, Any]) -> None:
    from benchmarks.scenarios import SCENARIOS

    assert list(tiny_run["scenarios"]) == [s.id for s in SCENARIOS]
    for name in tiny_run["scenarios"]:
        scenario = _scenario(tiny_run, name)
        assert scenario["groups"], name
        for group in scenario["groups"]:
            contenders = [row["contender"] for row in group["rows"]]
            assert "koherent" in contenders, (name, group["name"])
            assert group["baseline"] in contenders
            for row in group["rows"]:
                assert row["samples"] >= 1
                assert row["median"] > 0
                assert row["q1"] <= row["median"] <= row["q3"]
            baseline = next(r for r in group["rows"] if r["contender"] == group["baseline"])
            assert baseline["ratio"] == pytest.approx(1.0)
        for t in scenario["targets"]:
            assert isinstance(t["met"], bool)
            assert t["text"]
            assert t["measured"]


def test_write_scenario_contenders_each_wrote_stamped_history(tiny_run: dict[str, Any]) -> None:
    write = _scenario(tiny_run, "write")
    assert {g["name"] for g in write["groups"]} == {"autocommit", "transaction"}
    for counts in write["checks"]["history_rows"]:
        expected = counts.pop("expected")
        assert expected > 0
        assert counts.pop("plain") == 0
        assert counts == dict.fromkeys(counts, expected)
    assert all(write["checks"]["stamped"].values()), write["checks"]["stamped"]
    queries = {
        (g["name"], r["contender"]): r["queries"] for g in write["groups"] for r in g["rows"]
    }
    # Koherent adds no statement to simple-history's two, in either mode.
    assert queries["autocommit", "koherent"] == queries["autocommit", "simplehistory"] == 2
    assert queries["transaction", "koherent"] == 2


def test_bulk_scenario_rows_and_history_match(tiny_run: dict[str, Any]) -> None:
    bulk = _scenario(tiny_run, "bulk")
    rows = bulk["sizes"]["rows"]
    for contender, checks in bulk["checks"].items():
        assert checks, contender
        for check in checks:
            assert check["rows"] == rows
            assert check["history_rows"] == 2 * rows
            assert check["updates"] == rows
            assert check["without_user"] == 0
            if contender == "koherent":
                assert check["without_assignation"] == 0


def test_update_scenario_every_contender_did_the_same_work(tiny_run: dict[str, Any]) -> None:
    update = _scenario(tiny_run, "update")
    rows = update["sizes"]["rows"]
    sums = set()
    for contender, checks in update["checks"].items():
        assert checks, contender
        for check in checks:
            assert check["rows"] == rows
            sums.add(check["value_sum"])
            # update() then bulk_update(): two recorded updates per row, none for plain Django.
            expected = 0 if contender == "plain" else 2 * rows
            assert check["updates_recorded"] == expected, contender
            if contender != "plain":
                assert check["unattributed"] == 0
    assert len(sums) == 1  # every contender's rows ended in the same state
    assert all(t["met"] for t in update["targets"]), update["targets"]


def test_report_and_readme_table(tiny_run: dict[str, Any]) -> None:
    markdown = tiny_run["_markdown"]
    assert markdown.startswith("# Koherent benchmarks")
    for scenario in tiny_run["scenarios"].values():
        assert scenario["title"] in markdown
    assert "PostgreSQL" in markdown
    assert "load average" in markdown
    readme = tiny_run["_readme"]
    assert readme.startswith("# Project\n\nIntro.\n\n## Performance\n")
    assert readme.endswith("## Development\n\nmake test\n")
    assert readme.count("<!-- performance:start -->") == 1
    assert "| Write cost |" in readme


def test_query_scenario_every_contender_returns_the_whole_operation(
    tiny_run: dict[str, Any],
) -> None:
    query = _scenario(tiny_run, "query")
    expected = query["checks"]["expected"]
    assert expected == query["sizes"]["changes_per_assignation"]
    assert query["checks"]["rows_returned"] == {
        c: [expected] for c in ("koherent", "pghistory", "auditlog", "reversion")
    }
    assert [g["name"] for g in query["groups"]] == ["lookup-default", "lookup-prepared"]
    for measured in query["groups"]:
        queries = {row["contender"]: row["queries"] for row in measured["rows"]}
        # Koherent: one call of the history function (the record's list, then the rows).
        assert queries == {"koherent": 1, "pghistory": 1, "auditlog": 1, "reversion": 1}
    # The profile of the server's part profiled the lookup's tables, each step measured.
    profile = query["checks"]["server_profile_ms"]
    assert profile["tables"] == query["sizes"]["models"]
    for name in ("wide", "narrow"):
        assert profile[f"{name}_total"] > 0
        assert all(profile[f"{name}_{step}"] >= 0 for step in ("parse", "plan", "run"))
    assert any(n.startswith("Profile of the server's part") for n in query["notes"])


def test_query_wide_scenario_reads_only_the_touched_tables(tiny_run: dict[str, Any]) -> None:
    wide = _scenario(tiny_run, "query_wide")
    checks = wide["checks"]
    expected = checks["expected"]
    assert checks["rows_returned"] == {
        c: [expected] for c in ("koherent", "koherent_13", "koherent_scan", "reversion")
    }
    # The 13 models of the query scenario, the trigger capture contender's and 50 more.
    assert checks["tracked_models"] == 64
    models = wide["sizes"]["models"]
    # The server's count: the record and its list, then each touched table; the full scan
    # (no list) reads all 64 and nothing else.
    assert checks["tables"]["koherent"] == checks["tables"]["koherent_13"] == 2 + models
    assert checks["tables"]["koherent_scan"] == 64


def test_request_scenario_writes_a_record_per_request_in_no_extra_round_trip(
    tiny_run: dict[str, Any],
) -> None:
    request = _scenario(tiny_run, "request")
    checks = request["checks"]
    for counts in checks["history_rows"]:
        expected = counts.pop("expected")
        # Koherent's table also holds the rows of Koherent with ATOMIC_SAVES off.
        expected_koherent = counts.pop("expected_koherent")
        assert expected_koherent > expected
        assert counts == {
            c: (0 if c == "plain" else expected_koherent if c == "koherent" else expected)
            for c in (
                "plain",
                "simplehistory",
                "koherent",
                "auditlog",
                "reversion",
                "pghistory",
                "koherent-trigger",
            )
        }
    assert checks["stamped"] == dict.fromkeys(checks["stamped"], True)
    assert "koherent-trigger" in checks["stamped"]
    # One record and one touched model per request of either Koherent contender.
    for written in checks["records"]:
        assert written["records"] == written["touched"] == written["expected"]
    fresh, steady = checks["statements_fresh"], checks["statements_steady"]
    for mode in ("autocommit", "transaction"):
        assert fresh[f"koherent/{mode}"] == steady[mode] == fresh[f"simplehistory/{mode}"]
        # Trigger capture: one statement per save, the first of an assignation too.
        assert fresh[f"koherent-trigger/{mode}"] == checks["statements_steady_trigger"][mode] == 1
    # ATOMIC_SAVES off (autocommit only): the record goes in the history row's statement.
    assert fresh["koherent-apart/autocommit"] == checks["statements_steady_apart"] == 2
    assert "koherent-apart/transaction" not in fresh
    # The round trip and the commit were measured in the same rounds, and explain the ratio.
    assert checks["round_trip_us"] > 0
    assert checks["commit_us"] >= 0
    assert any(n.startswith("Why the autocommit ratio moves") for n in request["notes"])


def test_undo_scenario_every_contender_gives_back_the_state_before(
    tiny_run: dict[str, Any],
) -> None:
    undo = _scenario(tiny_run, "undo")
    checks = undo["checks"]
    contenders = ("koherent", "reversion", "simplehistory")
    assert checks["changes"] == dict.fromkeys(contenders, undo["sizes"]["changes"])
    assert checks["changed_before_undo"] == dict.fromkeys(contenders, True)
    for contender in contenders:
        assert checks["restored"][contender], contender
        assert all(checks["restored"][contender]), contender
    queries = {row["contender"]: row["queries"] for row in undo["groups"][0]["rows"]}
    assert queries["koherent"] < 50
    # The peers work object by object: at least one query per object.
    assert queries["reversion"] >= undo["sizes"]["objects"]
    assert queries["simplehistory"] >= undo["sizes"]["objects"]


def test_graphql_scenario_lists_every_entry_in_a_few_queries(tiny_run: dict[str, Any]) -> None:
    graphql = _scenario(tiny_run, "graphql")
    checks = graphql["checks"]
    expected = checks["expected"]
    assert set(checks["returned"]["graphql"]) == {expected}
    assert set(checks["returned"]["python"]) == {expected}
    # Batched: a handful of queries for the whole list, not one per entry.
    assert checks["queries"]["graphql"] < 12
    assert checks["queries"]["python"] < 8


def test_propagation_scenario_carries_each_context_and_nothing_without_hooks(
    tiny_run: dict[str, Any],
) -> None:
    propagation = _scenario(tiny_run, "propagation")
    seen = propagation["checks"]["propagated_as_expected"]
    # Koherent's assignation and django-guid's id arrive; with no hooks neither does,
    # although the publisher had both in effect.
    assert seen == {"none": [True], "koherent": [True], "guid": [True]}
    end_to_end, *hooks = propagation["groups"]
    assert [r["contender"] for r in end_to_end["rows"]] == ["none", "koherent", "guid"]
    # Through Celery's signals, receivers called directly, and the earlier batch method.
    assert [g["name"] for g in hooks] == ["hooks-signals", "hooks-direct", "hooks-batch"]
    for table in hooks:
        net = {r["contender"]: r["net_total"] for r in table["rows"]}
        assert net["none"] == 0
        assert net["koherent"] > 0
        assert net["guid"] > 0
    assert all(r["gc_us"] >= 0 for r in hooks[2]["rows"])


def test_capture_scenario_every_contender_wrote_its_stamped_history(
    tiny_run: dict[str, Any],
) -> None:
    capture = _scenario(tiny_run, "capture")
    assert [g["name"] for g in capture["groups"]] == [
        "save-autocommit",
        "save-transaction",
        "bulk_create",
        "update",
        "handoff",
    ]
    checks = capture["checks"]
    for saved in checks["saves"]:
        history = saved["history_rows"]
        assert history.pop("plain") == 0
        assert history == dict.fromkeys(history, saved["expected"])
        for contender in ("simplehistory", "koherent", "koherent-signal"):
            assert saved["unstamped"][contender] == 0, contender
    # Trigger capture and pghistory see bulk_create() and update(): one row each per object.
    for contender in ("koherent", "pghistory"):
        for check in checks["bulk"][contender]:
            assert check == {"history_rows": checks["bulk_expected"], "unstamped": 0}
    assert checks["handoff"]["stamped"] == checks["handoff"]["expected_stamped"]
    # With no context, and with the wrapper off, the trigger still wrote each row.
    assert checks["handoff"]["updates"] == 3 * checks["handoff"]["expected_stamped"]
    queries = {
        (g["name"], r["contender"]): r["queries"] for g in capture["groups"][:2] for r in g["rows"]
    }
    # The trigger writes the history row inside the save's own statement.
    assert queries["save-autocommit", "koherent"] == 1
    assert queries["save-transaction", "koherent"] == 1
