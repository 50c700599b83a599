"""Upgrading a project from the real koherent 0.2.0, on a database that 0.2.0 wrote.

1. In its own virtual environment (``tests/upgrade/environments.py``: koherent 0.2.0 from the
   package index with authentikate and kante 1.1.0, built once under ``.cache/upgrade/``), a
   copy of the small 0.2.0 project in ``tests/upgrade/project/`` gets its migrations from
   0.2.0's ``makemigrations``, is migrated, and writes history through 0.2.0's API
   (``write_020.py``: its Strawberry extension under kante contexts with authentikate, its
   context variables, a 150-character assignation id, two clients, an update, a delete, three
   models with foreign keys).
2. In this environment, following docs/upgrading.md: ``makemigrations`` (the migration must
   keep every column), ``migrate``, ``koherent_upgrade --dry-run``, ``koherent_upgrade``
   (twice: the second changes nothing), then ``check_upgraded.py`` reads and uses the old
   history (rows, 0.2.0 names, queries, admin, GraphQL, revert, new writes).
3. In the 0.2.0 environment with this version of koherent: the same 0.2-style GraphQL service
   stamps its rows, and refuses operations it cannot stamp (``write_kante.py``).
4. In this environment: the models move from ``ProvenanceField`` to ``HistoryField``; the
   migration that drops ``client`` carries it into ``app`` first
   (:class:`koherent.operations.CarryClientToApp`), and refuses, changing nothing, when a
   client id cannot be an app.

PostgreSQL only (0.2.0's users ran it; the stages share a database across processes). Cost:
the 0.2.0 environment takes about 40 s to build the first time (pip, from the package index)
and is reused afterwards; a run with it built takes about 30 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
import pytest

from koherent.legacy import DEPRECATED, DEPRECATED_MODULES
from tests.upgrade import environments

pytestmark = [
    pytest.mark.processes,
    pytest.mark.postgres,
    pytest.mark.skipif(
        os.environ.get("KOHERENT_TEST_DB", "postgres") != "postgres",
        reason="the upgrade from koherent 0.2.0 runs on PostgreSQL only: 0.2.0's users ran it, "
        "and the 0.2.0 environment and this one share one database across processes",
    ),
]

PROJECT = Path(__file__).resolve().parent / "project"
TIMEOUT = 300


class Project:
    """A copy of the 0.2.0 project and the database it runs on."""

    def __init__(self, path: Path, database_url: str) -> None:
        self.path = path
        self.database_url = database_url

    def run(
        self,
        python: Path | str,
        *args: str,
        stage: str,
        path: tuple[Path, ...] = (),
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        environment = {
            **os.environ,
            **(env or {}),
            "KOHERENT_UPGRADE_DATABASE_URL": self.database_url,
            "KOHERENT_UPGRADE_STAGE": stage,
            "DJANGO_SETTINGS_MODULE": "legacy_project.settings",
            "PYTHONPATH": os.pathsep.join(str(p) for p in (self.path, *path)),
            "PYTHONWARNINGS": "default::DeprecationWarning",
        }
        return subprocess.run(
            [str(python), *args],
            cwd=self.path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def ok(self, python: Path | str, *args: str, stage: str, path: tuple[Path, ...] = ()) -> str:
        result = self.run(python, *args, stage=stage, path=path)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []


def _admin_url(database_url: str) -> str:
    config = dj_database_url.parse(database_url)
    return (
        f"postgresql://{config.get('USER') or 'postgres'}:{config.get('PASSWORD') or ''}"
        f"@{config.get('HOST') or '127.0.0.1'}:{config.get('PORT') or 5432}/postgres"
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/koherent")
    config = dj_database_url.parse(base)
    name = f"{config['NAME']}_from020"
    admin = _admin_url(base)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    path = tmp_path_factory.mktemp("project-020") / "project"
    shutil.copytree(PROJECT, path, ignore=shutil.ignore_patterns("__pycache__", "0*.py"))
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    yield Project(path, url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def legacy() -> Path:
    return environments.legacy_python()


@pytest.fixture(scope="module")
def authentikate() -> Path:
    return environments.authentikate_path()


@pytest.fixture(scope="module")
def stage1(project: Project, legacy: Path) -> dict[str, Any]:
    """The history koherent 0.2.0 wrote (stage 1)."""
    project.ok(legacy, "manage.py", "makemigrations", "shelf", stage="0.2.0")
    project.ok(legacy, "manage.py", "migrate", stage="0.2.0")
    facts: dict[str, Any] = json.loads(project.ok(legacy, "write_020.py", stage="0.2.0"))
    (project.path / "stage1.json").write_text(json.dumps(facts))
    return facts


@pytest.fixture(scope="module")
def stage2(project: Project, stage1: dict[str, Any], authentikate: Path) -> dict[str, Any]:
    """The upgrade, step by step, and what this version then reads (stage 2)."""
    py, up, path = sys.executable, "upgraded", (authentikate,)
    out: dict[str, Any] = {}
    out["makemigrations"] = project.ok(
        py, "manage.py", "makemigrations", "shelf", stage=up, path=path
    )
    (generated,) = (project.path / "shelf" / "migrations").glob("0002_*.py")
    out["migration"] = generated.read_text()
    out["check_before"] = project.run(py, "manage.py", "check", stage=up, path=path)
    project.ok(py, "manage.py", "migrate", stage=up, path=path)
    check_db = ("manage.py", "check", "--database", "default")
    out["check_db_before"] = project.run(py, *check_db, stage=up, path=path)
    out["check_default_resolver"] = project.run(
        py,
        "manage.py",
        "check",
        stage=up,
        path=path,
        env={"KOHERENT_UPGRADE_DEFAULT_RESOLVER": "1"},
    )
    out["dry_run"] = project.ok(
        py, "manage.py", "koherent_upgrade", "--dry-run", stage=up, path=path
    )
    out["after_dry_run"] = project.sql(
        "SELECT (SELECT count(*) FROM shelf_historicalbook WHERE user_pk IS NOT NULL OR app IS "
        "NOT NULL), (SELECT count(*) FROM koherent_assignation)"
    )[0]
    out["upgrade"] = project.ok(
        py, "manage.py", "koherent_upgrade", "--batch-size", "2", stage=up, path=path
    )
    out["again"] = project.ok(py, "manage.py", "koherent_upgrade", stage=up, path=path)
    out["check_db_after"] = project.run(py, *check_db, stage=up, path=path)
    out["facts"] = json.loads(
        project.ok(py, "check_upgraded.py", "stage1.json", stage=up, path=path)
    )
    return out


@pytest.fixture(scope="module")
def stage3(project: Project, stage2: dict[str, Any], legacy: Path) -> dict[str, Any]:
    """The 0.2-style GraphQL service under this version of koherent (stage 3)."""
    facts: dict[str, Any] = json.loads(
        project.ok(legacy, "write_kante.py", stage="upgraded", path=(environments.ROOT,))
    )
    return facts


# -- stage 2: the migration ---------------------------------------------------------------------


def test_makemigrations_keeps_every_column_of_020(stage2: dict[str, Any]) -> None:
    migration = stage2["migration"]
    assert "RemoveField" not in migration, migration
    assert "DeleteModel" not in migration, migration
    # assignation_id keeps 0.2.0's 1000 characters (in Koherent's column of ASCII ids);
    # Koherent's columns are added.
    for model in ("historicallibrary", "historicalbook", "historicalloan"):
        assert re.search(
            rf"model_name='{model}',\s*name='assignation_id',\s*"
            rf"field=koherent\.stamping\.AssignationIdField\([^\n]*max_length=1000",
            migration,
        ), model
        for column in ("app", "task_id", "user_pk"):
            assert re.search(rf"model_name='{model}',\s*name='{column}'", migration), column
    assert "name='client'" not in migration  # untouched: kept as it is
    assert "name='history_relation'" not in migration


def test_the_upgraded_project_passes_its_checks(stage2: dict[str, Any]) -> None:
    result = stage2["check_before"]
    assert result.returncode == 0, result.stderr
    assert "DeprecationWarning: koherent.fields.ProvenanceField" in result.stderr


def test_checks_point_at_the_upgrade_steps(stage2: dict[str, Any]) -> None:
    before, after = stage2["check_db_before"], stage2["check_db_after"]
    for label in ("shelf.HistoricalBook", "shelf.HistoricalLibrary", "shelf.HistoricalLoan"):
        assert f"{label}: (koherent.W071)" in before.stderr, before.stderr
    assert "koherent.W071" not in after.stderr + after.stdout
    assert after.returncode == 0
    assert "koherent.W070" not in stage2["check_before"].stderr  # the resolver is set
    assert "koherent.W070" in stage2["check_default_resolver"].stderr


def test_the_dry_run_counts_and_writes_nothing(stage2: dict[str, Any]) -> None:
    dry = stage2["dry_run"]
    assert "shelf.HistoricalBook: would write user_pk of 4 row(s)" in dry
    assert "shelf.HistoricalLibrary: would write user_pk of 3 row(s)" in dry
    assert "shelf.HistoricalBook: would write app (from client) of 4 row(s)" in dry
    assert "Dry run: nothing was written." in dry
    assert tuple(stage2["after_dry_run"]) == (0, 0)


def test_the_upgrade_runs_in_batches_and_a_second_run_changes_nothing(
    stage2: dict[str, Any],
) -> None:
    upgrade = stage2["upgrade"]
    assert "shelf.HistoricalBook user_pk: [###############...............] 2/4" in upgrade
    assert "shelf.HistoricalBook: wrote user_pk of 4 row(s)" in upgrade
    assert "shelf.HistoricalLoan: wrote app (from client) of 1 row(s)" in upgrade
    assert "Nothing to upgrade: every history row is up to date." in stage2["again"]
    assert "wrote" not in stage2["again"]


# -- stage 2: the old rows ----------------------------------------------------------------------


def test_every_020_row_is_read_with_its_user_app_and_assignation(
    stage1: dict[str, Any], stage2: dict[str, Any]
) -> None:
    read = stage2["facts"]["rows"]
    clients = stage1["clients"]
    count = 0
    for table, rows in stage1["rows"].items():
        by_id = {row[0]: row for row in read[table]}
        for history_id, _object_id, _kind, user_id, client_id, assignation_id in rows:
            got = by_id[history_id]
            expected_user = None if user_id is None else str(user_id)
            expected_app = None if client_id is None else clients[str(client_id)]
            assert got[1:4] == [expected_user, expected_app, assignation_id], (table, got)
            count += 1
    assert count == 9
    long = stage1["assignations"]["long"]
    assert len(long) == 150
    assert sum(row[3] == long for rows in read.values() for row in rows) == 4
    # The row written without any context stays without one.
    assert read["shelf_historicallibrary"][3][1:4] == [None, None, None]
    assert stage2["facts"]["provenance_entries"] == 1


def test_020_assignations_become_records(stage1: dict[str, Any], stage2: dict[str, Any]) -> None:
    a = stage1["assignations"]
    users = stage1["users"]
    records = stage2["facts"]["assignations"]
    assert records[a["long"]] == {
        "user_pk": str(users["alice"]),
        "app": "alice-lab-app",
        "origin": "imported",
        "changes": 4,
    }
    assert records[a["bob"]]["app"] == "bob-scanner"
    assert records[a["bob"]]["user_pk"] == str(users["bob"])
    assert records[a["script"]]["changes"] == 2
    history = stage2["facts"]["history"]
    assert [row[:2] for row in history["long"]] == [
        ["shelf.Library", "CREATE"],
        ["shelf.Book", "CREATE"],
        ["shelf.Book", "CREATE"],
        ["shelf.Loan", "CREATE"],
    ]
    assert [row[1] for row in history["bob"]] == ["UPDATE", "DELETE"]
    assert {row[4] for row in history["bob"]} == {"bob-scanner"}


def test_the_admin_and_graphql_show_020_work(
    stage1: dict[str, Any], stage2: dict[str, Any]
) -> None:
    admin = stage2["facts"]["admin"]
    assert admin["list_status"] == 200
    assert sorted(admin["list_names"]) == ["bob", "long", "script"]
    assert admin["detail_status"] == 200
    assert admin["detail_mentions_dune"]
    assert admin["book_history_status"] == 200
    assert admin["book_history_shows_app"]
    graphql = stage2["facts"]["graphql"]
    assert graphql["errors"] == []
    assignation = graphql["data"]["assignation"]
    assert assignation["id"] == stage1["assignations"]["long"]
    assert (assignation["app"], assignation["origin"]) == ("alice-lab-app", "imported")
    assert [e["modelLabel"] for e in assignation["changes"]["entries"]] == [
        "shelf.Library",
        "shelf.Book",
        "shelf.Book",
        "shelf.Loan",
    ]


def test_revert_assignation_undoes_020_work(
    stage1: dict[str, Any], stage2: dict[str, Any]
) -> None:
    revert = stage2["facts"]["revert"]
    assert revert["dune_pages"] == 412  # bob's update to 500 undone
    assert revert["emma_back"]  # bob's delete undone
    assert (revert["restored"], revert["recreated"]) == (1, 1)
    assert revert["revert_parent"] == stage1["assignations"]["bob"]


def test_new_writes_are_stamped(stage1: dict[str, Any], stage2: dict[str, Any]) -> None:
    new = stage2["facts"]["new_write"]
    assert new["assignation"][0] == new["assignation"][1]
    assert (new["user_pk"], new["app"], new["record"]) == (
        str(stage1["users"]["alice"]),
        "alice-lab-app",
        True,
    )
    assert new["bare"] == [None, None, None]  # and none leaks into the next write


def test_every_020_name_works_with_a_warning_naming_its_replacement(
    stage2: dict[str, Any],
) -> None:
    names = stage2["facts"]["names"]
    assert set(names) == {f"{module}.{name}" for module, name in DEPRECATED}
    for (module, name), (replacement, _source) in DEPRECATED.items():
        found = names[f"{module}.{name}"]
        assert found["works"], name
        assert any(
            f"{module}.{name} is a koherent 0.2 name" in w and replacement in w
            for w in found["warnings"]
        ), found
    assert stage2["facts"]["modules"] == sorted(DEPRECATED_MODULES)


# -- stage 3: the 0.2-style GraphQL service under this version ----------------------------------


def test_a_kante_service_keeps_stamping(stage1: dict[str, Any], stage3: dict[str, Any]) -> None:
    assert stage3["koherent"].startswith(str(environments.ROOT))
    users = stage1["users"]
    assert stage3["named_op"]["errors"] == []
    _id, assignation, user_pk, app, history_user = stage3["named_row"]
    assert (assignation, user_pk, app, history_user) == (
        stage3["named"],
        str(users["bob"]),
        "bob-scanner",
        users["bob"],
    )
    _id, assignation, user_pk, app, _user = stage3["fresh_row"]
    assert assignation  # a mutation without the header gets an assignation of its own
    assert (user_pk, app) == (str(users["alice"]), "alice-lab-app")


def test_a_kante_service_refuses_what_it_cannot_stamp(stage3: dict[str, Any]) -> None:
    wrong = stage3["wrong_order_op"]
    assert wrong["codes"] == ["KOHERENT_INVALID_AUDIT_CONTEXT"]
    assert "list AuthentikateExtension before KoherentExtension" in wrong["errors"][0]
    unreadable = stage3["unreadable_op"]
    assert unreadable["codes"] == ["KOHERENT_INVALID_AUDIT_CONTEXT"]
    assert "cannot read the audit context" in unreadable["errors"][0]
    websocket = stage3["websocket_op"]
    assert websocket["codes"] == ["KOHERENT_WEBSOCKET_MUTATION_REFUSED"], websocket
    assert stage3["websocket_query"] == {"errors": [], "codes": [], "data": {"ping": "pong"}}
    assert stage3["refused_rows_written"] == 0


def test_020_context_variable_still_sets_the_assignation(stage3: dict[str, Any]) -> None:
    _id, assignation, _user_pk, _app, _user = stage3["vars_row"]
    assert assignation == "plain-02-code"
    assert stage3["vars_record"]


# -- stage 4: leaving ProvenanceField: client is carried into app before it is dropped ----------


def test_dropping_client_carries_it_into_app_first_or_refuses(
    project: Project, stage3: dict[str, Any], authentikate: Path
) -> None:
    py, up, path = sys.executable, "upgraded", (authentikate,)
    book_apps = "SELECT history_id, app FROM shelf_historicalbook WHERE history_id <= 4 ORDER BY 1"

    # Rows whose app was never carried (as if koherent_upgrade had not run), and a client id
    # that cannot be an app name. koherent_upgrade carries what it can, names what it cannot,
    # and exits with status 2.
    project.sql("UPDATE shelf_historicalbook SET app = NULL WHERE client_id IS NOT NULL")
    project.sql("UPDATE authentikate_client SET client_id = 'bob scanner' WHERE id = 2")
    partial = project.run(py, "manage.py", "koherent_upgrade", stage=up, path=path)
    assert partial.returncode == 2, partial.stderr
    assert "shelf.HistoricalBook: client 2 (app 'bob scanner' is not allowed" in partial.stderr
    assert "2 row(s) of shelf_historicalbook" in partial.stderr
    assert project.sql(book_apps) == [
        (1, "alice-lab-app"),
        (2, "alice-lab-app"),
        (3, None),
        (4, None),
    ]

    # The models leave ProvenanceField: makemigrations drops client.
    models_file = project.path / "shelf" / "models.py"
    source = models_file.read_text()
    source = source.replace(
        "from koherent.fields import HistoricForeignKey, ProvenanceField",
        "from koherent.fields import HistoricForeignKey, HistoryField",
    ).replace("ProvenanceField()", 'HistoryField(related_name="provenance_entries")')
    models_file.write_text(source)
    project.ok(
        py, "manage.py", "makemigrations", "shelf", "-n", "drop_client", stage=up, path=path
    )
    (migration,) = (project.path / "shelf" / "migrations").glob("0003_drop_client.py")
    text = migration.read_text()
    assert text.count("migrations.RemoveField(") == 3, text
    assert "name='client'" in text, text
    assert "history_relation" not in text

    # The generated migration, as it is, would drop bob's client: refused before it starts.
    unguarded = project.run(py, "manage.py", "migrate", "shelf", stage=up, path=path)
    assert unguarded.returncode != 0
    assert "Refusing to migrate: koherent 0.2's client column would be dropped" in (
        unguarded.stderr
    )
    assert (
        "shelf.0003_drop_client drops shelf_historicalbook.client, but 2 row(s) have a client "
        "that is not in app yet" in unguarded.stderr
    )
    assert "CarryClientToApp" in unguarded.stderr
    assert project.sql(
        "SELECT count(*) FROM django_migrations WHERE app = 'shelf' AND name = '0003_drop_client'"
    ) == [(0,)]

    # The documented step: CarryClientToApp before the RemoveField of each model. With the
    # bad client id it refuses, and changes nothing.
    text = text.replace(
        "from django.db import migrations",
        "from django.db import migrations\nfrom koherent.operations import CarryClientToApp",
    ).replace(
        "    operations = [\n",
        "    operations = [\n"
        '        CarryClientToApp("historicallibrary"),\n'
        '        CarryClientToApp("historicalbook"),\n'
        '        CarryClientToApp("historicalloan"),\n',
    )
    migration.write_text(text)
    refused = project.run(py, "manage.py", "migrate", "shelf", stage=up, path=path)
    assert refused.returncode != 0
    assert "UpgradeRefused: Cannot carry shelf.historicalbook.client into app" in refused.stderr
    assert "client 2 (app 'bob scanner' is not allowed" in refused.stderr
    assert "2 row(s) of shelf_historicalbook" in refused.stderr
    assert project.sql(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = "
        "'shelf_historicalbook' AND column_name = 'client_id'"
    ) == [(1,)]
    assert project.sql(book_apps)[2:] == [(3, None), (4, None)]

    # Fixed: the migration carries bob's client, then drops the column.
    project.sql("UPDATE authentikate_client SET client_id = 'bob-scanner' WHERE id = 2")
    project.ok(py, "manage.py", "migrate", "shelf", stage=up, path=path)
    assert project.sql(
        "SELECT count(*) FROM information_schema.columns WHERE column_name = 'client_id' "
        "AND table_name LIKE 'shelf_historical%%'"
    ) == [(0,)]
    assert project.sql(book_apps) == [
        (1, "alice-lab-app"),
        (2, "alice-lab-app"),
        (3, "bob-scanner"),
        (4, "bob-scanner"),
    ]
