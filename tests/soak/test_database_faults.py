"""The database goes away mid-write: no change without its history row, none the other way.

A real Celery worker (threads) and a real uvicorn server write tracked orders on a PostgreSQL
server of the test's own (:mod:`tests.soak.own_postgres`): each task and each request creates
an order and changes it in one transaction, with a pause in the database between the two
saves. Meanwhile a separate connection terminates the backends serving them
(``pg_terminate_backend``) at random moments, and the server is restarted (``pg_ctl stop -m
immediate``, a crash, then ``start``) while the writes go on. Tasks retry on
``OperationalError``/``InterfaceError`` (``autoretry_for``) and are idempotent; requests are
not retried. Django's ``CONN_MAX_AGE`` and ``CONN_HEALTH_CHECKS`` are on and off.

Afterwards, held against what the test sent (:func:`check`):

* no order without both its history rows (the creation and the change), no history row without
  its order, no order half written;
* no assignation record without a history row, no history row naming an assignation without
  its record;
* every row stamped with its sender's user, app and assignation (and, for a task, its task id),
  a retried task's rows once, under its original context;
* every task done, every request answered 200 committed.

The checker is shown to catch each kind of damage on the very database it checked (an order
without history, a history row without its order, a record without rows, a row without its
record, a row moved to another assignation).

``capture`` is the way history rows are written: ``signal`` (simple-history's receivers, in
the save's transaction; the orders are ``testapp.Order``) and ``trigger`` (a PostgreSQL
trigger; the orders are ``tests.capture``'s ``FaultOrder``, ``HistoryField(capture="trigger")``,
with the same fields). The task and the view write the model of the variant.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection

import koherent
from tests import services
from tests.aio.servers import running_server
from tests.celery.harness import Worker, WorkerConfig, wait_for
from tests.soak import support
from tests.soak.celery_audit import CONTEXT_TROUBLE
from tests.soak.own_postgres import PostgresServer, own_postgres

# The test database is copied (its schema) into the server of our own; the test writes nothing
# in it, but pytest-django creates it only for tests that ask for it.
pytestmark = [
    pytest.mark.processes,
    support.soak,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

#: ``CONN_MAX_AGE``, ``CONN_HEALTH_CHECKS`` of the worker and the server.
CONNECTIONS = {
    "off": ("0", "0"),
    "on": ("60", "1"),
    # Persistent connections nobody checks: a terminated one is found dead by the next write.
    "persistent-unchecked": ("60", "0"),
}
CAPTURES = ("signal", "trigger")
APPS = ("shop", "billing", "importer")
#: The app of requests (the server's ``KOHERENT["APP"]``; they name none).
SERVER_APP = "tests"
#: What the killer leaves alone.
CHECKER = "koherent-checker"
#: A record of the worker's log for each retry of ``kt.fault_write``.
RETRY = re.compile(r"Task kt\.fault_write\[[^\]]+\] retry: Retry in")
#: The warning of a record that could not be written while its change was kept. A record
#: write failing with the connection fails the change with it, and says nothing of the kind.
RECORD_WARNING = "could not write the record of assignation"


#: The order table and its history table each capture writes: ``testapp.Order`` (signals),
#: ``tests.capture``'s ``FaultOrder`` (a PostgreSQL trigger, the same fields).
TABLES = {
    "signal": ("testapp_order", "testapp_historicalorder"),
    "trigger": ("capture_faultorder", "capture_historicalfaultorder"),
}


@dataclass(frozen=True)
class Expected:
    """A write the test sent: the stamp each of its history rows must carry."""

    reference: str
    assignation_id: str
    app: str
    user_pk: str | None
    task_id: str | None


@dataclass
class Found:
    """What :func:`check` found; every list holds ``"<reference or id>: <what>"`` lines."""

    orders: int = 0
    history_rows: int = 0
    records: int = 0
    change_without_history: list[str] = field(default_factory=list)
    history_without_change: list[str] = field(default_factory=list)
    half_written: list[str] = field(default_factory=list)
    record_without_rows: list[str] = field(default_factory=list)
    row_without_record: list[str] = field(default_factory=list)
    misattributed: list[str] = field(default_factory=list)
    written_twice: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    KINDS = (
        "change_without_history",
        "history_without_change",
        "half_written",
        "record_without_rows",
        "row_without_record",
        "misattributed",
        "written_twice",
        "unexpected",
    )

    @property
    def orphans(self) -> int:
        return sum(
            len(getattr(self, kind))
            for kind in (
                "change_without_history",
                "history_without_change",
                "half_written",
                "record_without_rows",
                "row_without_record",
            )
        )

    @property
    def clean(self) -> bool:
        return not any(getattr(self, kind) for kind in self.KINDS)

    def summary(self) -> str:
        lines = [f"{k}: {len(v)} {v[:10]}" for k in self.KINDS if (v := getattr(self, k))]
        return "\n".join(lines) or "clean"


def check(
    conn: psycopg.Connection[Any], expected: dict[str, Expected], capture: str = "signal"
) -> Found:
    """Hold the orders, their history rows and the assignation records against ``expected``
    (the tables of ``capture``, :data:`TABLES`)."""
    found = Found()
    order_table, history_table = TABLES[capture]
    orders = conn.execute(f"SELECT id, reference, status FROM {order_table}").fetchall()
    rows = conn.execute(
        "SELECT id, reference, status, history_type, assignation_id, app, user_pk, task_id "
        f"FROM {history_table}"
    ).fetchall()
    records = dict(
        conn.execute(
            "SELECT id, coalesce(user_pk, '') || '|' || coalesce(app, '') "
            "FROM koherent_assignation"
        ).fetchall()
    )
    found.orders, found.history_rows, found.records = len(orders), len(rows), len(records)
    by_order: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_order.setdefault(row[0], []).append(row)
    references = Counter(reference for _, reference, _ in orders)
    for order_id, reference, status in orders:
        kinds = sorted((r[3], r[2]) for r in by_order.get(order_id, []))
        if kinds != [("+", "new"), ("~", "done")]:
            found.change_without_history.append(f"{reference}: history {kinds}")
        if status != "done":
            found.half_written.append(f"{reference}: status {status}")
        if reference not in expected:
            found.unexpected.append(f"{reference}: written by nobody the test sent")
        elif references[reference] > 1:
            found.written_twice.append(f"{reference}: {references[reference]} orders")
    order_ids = {order_id for order_id, _, _ in orders}
    used: set[str] = set()
    for order_id, reference, _, kind, assignation_id, app, user_pk, task_id in rows:
        if order_id not in order_ids:
            found.history_without_change.append(f"{reference}: {kind} row of order {order_id}")
        if assignation_id is not None:
            used.add(assignation_id)
            if assignation_id not in records:
                found.row_without_record.append(f"{reference}: assignation {assignation_id}")
        sent = expected.get(reference)
        if sent is None:
            continue
        stamp = (assignation_id, app, user_pk, task_id)
        wanted = (sent.assignation_id, sent.app, sent.user_pk, sent.task_id)
        if stamp != wanted:
            found.misattributed.append(f"{reference}: {stamp} instead of {wanted}")
    for record_id in records:
        if record_id not in used:
            found.record_without_rows.append(f"record {record_id}: no history row")
    return found


@pytest.fixture(scope="module")
def database(django_db_setup: Any, django_db_blocker: Any) -> Iterator[PostgresServer]:
    services.need("postgres")
    with own_postgres(str(connection.settings_dict["NAME"])) as server:
        yield server


def make_users(conn: psycopg.Connection[Any], count: int) -> list[int]:
    conn.execute(
        "INSERT INTO testapp_user (password, is_superuser, username, first_name, last_name, "
        "email, is_staff, is_active, date_joined) SELECT '', false, 'faults-' || n, '', '', '', "
        "false, true, now() FROM generate_series(1, %s) AS n",
        [count],
    )
    return [pk for (pk,) in conn.execute("SELECT id FROM testapp_user ORDER BY id").fetchall()]


#: The pause of the task in whose write the server crashes (a value no other write uses).
RESTART_PAUSE = 1.25


def sleeping(server: PostgresServer) -> bool:
    """Whether a task is in the pause of its write that the restart waits for."""
    with server.connect(application=CHECKER) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
            "AND application_name <> %s",
            # Anywhere in the statement: trigger capture sends the context's settings with it.
            [f"%SELECT pg_sleep({RESTART_PAUSE}%", CHECKER],
        ).fetchone()
    return bool(row and row[0])


class Killer(threading.Thread):
    """Terminates a random backend of the workers and servers every ``pause`` seconds or so."""

    def __init__(self, server: PostgresServer, pause: tuple[float, float], seed: int) -> None:
        super().__init__(name="killer", daemon=True)
        self.server, self.pause, self.rng = server, pause, random.Random(seed)
        self.kills = 0
        self.stop = threading.Event()
        self.paused = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.stop.wait(self.rng.uniform(*self.pause)):
            if self.paused.is_set():
                continue
            try:
                if conn is None or conn.closed:
                    conn = self.server.connect(application=CHECKER)
                pids = [
                    pid
                    for (pid,) in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
                        "AND application_name <> %s",
                        [CHECKER],
                    ).fetchall()
                ]
                if pids and conn.execute(
                    "SELECT pg_terminate_backend(%s)", [self.rng.choice(pids)]
                ).fetchone() == (True,):
                    self.kills += 1
            except psycopg.Error:  # the server is restarting
                conn = None
        if conn is not None:
            conn.close()


@dataclass
class Request:
    reference: str
    assignation_id: str
    status: int = 0
    failure: str | None = None


def post(client: httpx.Client, request: Request, pause: float, capture: str) -> None:
    try:
        response = client.post(
            "/aio/fault-write/",
            data={"reference": request.reference, "pause": str(pause), "capture": capture},
            headers={"X-Assignation-ID": request.assignation_id},
        )
        request.status = response.status_code
    except httpx.HTTPError as exc:
        request.failure = repr(exc)


@pytest.mark.parametrize("capture", CAPTURES)
@pytest.mark.parametrize(
    "connections", list(CONNECTIONS) if support.full() or support.medium() else ["off", "on"]
)
def test_no_change_without_its_history_row_when_the_database_goes_away(
    connections: str, capture: str, database: PostgresServer, tmp_path: Path
) -> None:
    order_table, history_table = TABLES[capture]
    services.need("redis")
    tasks = support.size(3_000, 30)
    requests = support.size(3_000, 30)
    restarts = support.size(3, 1)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    max_age, health_checks = CONNECTIONS[connections]
    env = {
        "DATABASE_URL": database.url(),
        "KOHERENT_TEST_DB_NAME": "koherent_faults",
        "KOHERENT_TEST_CONN_MAX_AGE": max_age,
        "KOHERENT_TEST_CONN_HEALTH_CHECKS": health_checks,
    }
    with database.connect(application=CHECKER) as conn:
        conn.execute(
            f"TRUNCATE {order_table}, {history_table}, koherent_assignation, testapp_user "
            "RESTART IDENTITY CASCADE"
        )
        users = make_users(conn, 8)

    starts = database.starts
    config = WorkerConfig("redis", pool="threads", concurrency=4, env=tuple(env.items()))
    worker = Worker(f"faults-{connections}", config, "koherent_faults", tmp_path / "worker.log")
    killer = Killer(database, (0.05, 0.25), seed)
    expected: dict[str, Expected] = {}
    sent_requests: list[Request] = []
    results: dict[str, Any] = {}
    started = time.monotonic()
    with running_server("uvicorn", env=env) as server:
        server_pid = server.pid
        worker.start()
        try:
            killer.start()
            pacing = 0.04
            with (
                httpx.Client(base_url=server.url, timeout=60) as client,
                ThreadPoolExecutor(4) as pool,
            ):
                restart_at = {(k + 1) * (tasks // (restarts + 1)) for k in range(restarts)}
                for n in range(max(tasks, requests)):
                    # The task sent where the server restarts holds its transaction open
                    # (RESTART_PAUSE) and the restart waits for it: a crash always lands in
                    # the middle of a task's write, whatever the connection settings.
                    pause = RESTART_PAUSE if n in restart_at else rng.uniform(0, 0.05)
                    if n in restart_at:
                        killer.paused.set()  # the killer would end that task's attempt first
                    if n < tasks:
                        user, app = rng.choice(users), rng.choice(APPS)
                        with koherent.assignation(user=user, app=app) as ctx:
                            assert ctx.assignation_id is not None
                            label = f"t{n}"
                            result = worker.tasks.fault_write.delay(label, pause, capture)
                        results[label] = result
                        expected[label] = Expected(
                            label, ctx.assignation_id, app, str(user), result.id
                        )
                    if n < requests:
                        request = Request(f"q{n}", str(uuid.uuid4()))
                        sent_requests.append(request)
                        pool.submit(post, client, request, rng.uniform(0, 0.05), capture)
                    if n in restart_at:
                        wait_for(lambda: sleeping(database), timeout=60, what="a task mid-write")
                        database.restart("immediate")
                        killer.paused.clear()
                    time.sleep(pacing)
            outcomes: Counter[str] = Counter()
            for label, result in results.items():
                try:
                    outcomes[result.get(timeout=120)] += 1
                except Exception as exc:
                    outcomes[f"failed: {type(exc).__name__}"] += 1
                    expected.pop(label)
        finally:
            killer.stop.set()
            killer.join(timeout=30)
            worker.stop()
        server_log = server.output()
    duration = time.monotonic() - started
    worker_log = worker.log()

    answered = {r.reference: r for r in sent_requests}
    for request in sent_requests:
        expected[request.reference] = Expected(
            request.reference, request.assignation_id, SERVER_APP, None, None
        )
    with database.connect(application=CHECKER) as conn:
        found = check(conn, expected, capture)
        committed = {
            reference for (reference,) in conn.execute(f"SELECT reference FROM {order_table}")
        }
        # Orders written by a task's retry (``total`` holds the attempt's retry count): their
        # rows are held against the task's original context like the others.
        row = conn.execute(
            f"SELECT count(*) FROM {order_table} WHERE reference LIKE 't%%' AND total > 0"
        ).fetchone()
        committed_by_a_retry = int(row[0]) if row else 0
        records = dict(conn.execute("SELECT id, user_pk FROM koherent_assignation"))
    ok = [r for r in sent_requests if r.status == 200]
    refused = [r for r in sent_requests if r.status != 200]
    # A request answered 500 whose commit the server made before losing the connection
    # (it could not know): committed, with its history.
    committed_refused = [r for r in refused if r.reference in committed]
    retries = len(RETRY.findall(worker_log))
    record_warnings = worker_log.count(RECORD_WARNING) + server_log.count(RECORD_WARNING)
    already = outcomes["already"]
    task_attempts = tasks + retries
    figures: dict[str, object] = {
        "size": support.size_name(),
        "capture": capture,
        "conn_max_age": max_age,
        "conn_health_checks": health_checks == "1",
        "backends_terminated": killer.kills,
        "server_restarts": database.starts - starts,
        "writes_attempted": task_attempts + requests,
        "task_attempts": task_attempts,
        "task_retries": retries,
        "tasks_committed_by_a_retry": committed_by_a_retry,
        "requests": requests,
        "committed": len(committed),
        "rolled_back": task_attempts - tasks + already + len(refused) - len(committed_refused),
        "committed_by_an_attempt_whose_answer_was_lost": already + len(committed_refused),
        "requests_answered_500": len(refused),
        "tasks_failed": sum(n for k, n in outcomes.items() if k.startswith("failed")),
        "history_rows_checked": found.history_rows,
        "assignation_records": found.records,
        "record_kept_without_record_warnings": record_warnings,
        "orphans": found.orphans,
        "misattributed": len(found.misattributed),
        "written_twice": len(found.written_twice),
        "duration_s": round(duration, 1),
        "seed": seed,
    }
    support.report(f"database-faults-{capture}-{connections}", **figures)

    assert found.clean, found.summary()
    assert not [k for k in outcomes if k.startswith("failed")], outcomes
    assert set(results) <= committed, "a task did not commit"
    assert all(r.reference in committed for r in ok), "a request answered 200 did not commit"
    assert not [r for r in sent_requests if r.failure], [r.failure for r in sent_requests][:5]
    assert set(answered) == {r.reference for r in sent_requests}
    # The faults did happen: backends were terminated, the server restarted, tasks retried.
    assert killer.kills > 0
    assert database.starts == starts + restarts
    assert retries > 0
    assert committed_by_a_retry + already > 0
    # Each record is its assignation's, written once (the user of a task's assignation).
    for sent in expected.values():
        if sent.reference in committed:
            assert records[sent.assignation_id] == sent.user_pk, sent
    problems = [
        line
        for line in (worker_log + server_log).splitlines()
        if CONTEXT_TROUBLE.search(line) or ("koherent" in line and "WARNING" in line)
    ]
    assert not problems, "\n".join(problems[:20])
    assert record_warnings == 0
    assert server_pid > 0

    # Negative control: each kind of damage, made on this very database, is caught.
    with database.connect(application=CHECKER) as conn:
        damage(conn, capture)
        damaged = check(conn, expected, capture)
    assert len(damaged.change_without_history) == 1, damaged.summary()
    assert len(damaged.history_without_change) == 1, damaged.summary()
    assert len(damaged.record_without_rows) == 1, damaged.summary()
    assert len(damaged.row_without_record) == 1, damaged.summary()
    assert len(damaged.misattributed) == 1, damaged.summary()
    assert damaged.orphans == 4


def damage(conn: psycopg.Connection[Any], capture: str) -> None:
    """An order without history, a history row without its order, a record without rows, a
    row naming an assignation without record, a row moved to another assignation. Made with
    the capture's triggers off (``session_replication_role``): a trigger would write history
    rows of the damage itself."""
    order_table, history_table = TABLES[capture]
    conn.execute("SET session_replication_role = replica")
    first, second, third = sorted(
        reference
        for (reference,) in conn.execute(
            f"SELECT reference FROM {order_table} ORDER BY id LIMIT 3"
        )
    )
    # An order whose history rows are gone.
    conn.execute(f"DELETE FROM {history_table} WHERE reference = %s", [first])
    # A history row whose order is gone (its history rows stay).
    conn.execute(f"DELETE FROM {order_table} WHERE reference = %s", [second])
    conn.execute(
        f"DELETE FROM {history_table} WHERE reference = %s AND history_type = '~'",
        [second],
    )
    # The record of ``first``'s assignation now has no rows; move ``third``'s change to an
    # assignation without record (a misattribution and a row without record at once).
    conn.execute(
        f"UPDATE {history_table} SET assignation_id = 'nowhere' "
        "WHERE reference = %s AND history_type = '~'",
        [third],
    )
    conn.execute("SET session_replication_role = DEFAULT")
