"""docs/quickstart.md's project, run as the page says: a real Celery worker on Redis, the view
behind Django's development server, PostgreSQL, then the history query and the revert.

The project's files in examples/quickstart/ are what the page shows (tests/docs checks the
page's blocks against them), so the page and what runs here cannot drift.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "quickstart"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.postgres]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own for the project (the test database stays untouched)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the quick start runs on PostgreSQL")
    name = f"{db['NAME']}_quickstart"[:63]
    server = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(database: str, queue: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "KOHERENT_TEST_DB"}
    }
    env.update(
        DATABASE_URL=database,
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        CELERY_QUEUE=queue,
        PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _wait_for(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.stdout.read() if process.stdout is not None else ""


def test_the_quickstart_project_runs_end_to_end(database: str, tmp_path: Path) -> None:
    env = _env(database, f"quickstart-{uuid.uuid4().hex[:12]}")
    _manage(env, "migrate", "--verbosity=0")
    _manage(env, "check", "--fail-level=WARNING")
    worker_log = tmp_path / "worker.log"
    port = _free_port()
    with worker_log.open("w") as log:
        # The page's worker command, as it is written there.
        worker = subprocess.Popen(
            ["celery", "-A", "proj", "worker", "--loglevel=INFO"],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(lambda: " ready." in worker_log.read_text(), "the worker")

        def answers() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        _wait_for(answers, "the server")
        # The page's curl: POST /orders/ naming the assignation checkout-42.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/orders/",
            data=b"reference=A-1",
            headers={"X-Assignation-ID": "checkout-42"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
            assert response.headers["X-Assignation-ID"] == "checkout-42"
            order_id = json.loads(response.read())["order"]

        def history() -> list[dict[str, object]]:
            shown = json.loads(_manage(env, "koherent_history", "checkout-42", "--json"))
            return list(shown["changes"])

        _wait_for(lambda: len(history()) == 2, "the task's change", timeout=90)
        created, confirmed = history()
        assert (created["kind"], created["app"], created["task_id"]) == (
            "CREATE",
            "quickstart",
            None,
        )
        assert confirmed["kind"] == "UPDATE"
        assert confirmed["app"] == "quickstart"
        assert confirmed["assignation_id"] == "checkout-42"
        task_id = confirmed["task_id"]
        assert isinstance(task_id, str)
        assert re.fullmatch(r"[0-9a-f-]{36}", task_id)
        assert {"field": "status", "old": "new", "new": "confirmed"} in confirmed["fields"]  # type: ignore[operator]

        # The task's log line carries the audit fields (CELERY_WORKER_HIJACK_ROOT_LOGGER off);
        # the worker's own start-up lines, written under no context, carry none.
        log_text = worker_log.read_text()
        assert (
            f"INFO shop.tasks [checkout-42 app=quickstart task={task_id}] "
            f"confirmed order {order_id}"
        ) in log_text, log_text
        ready = next(line for line in log_text.splitlines() if line.endswith(" ready."))
        assert "[ app= task=]" in ready, ready

        # The page's undo.py, as `python manage.py shell < undo.py` runs it.
        out = _manage(env, "shell", stdin=(PROJECT / "undo.py").read_text())
        lines = [ln for ln in out.splitlines() if ln and "imported automatically" not in ln]
        assert "CREATE shop.Order" in lines[0], out
        assert "UPDATE shop.Order" in lines[1]
        assert task_id in lines[1]
        assert lines[2].startswith("reverted checkout-42"), out
        gone = _manage(
            env, "shell", "-c", "from shop.models import Order; print(Order.objects.count())"
        )
        assert gone.splitlines()[-1] == "0"
    finally:
        server_output = _stop(server)
        _stop(worker)
    assert "POST /orders/" in server_output


def test_the_page_shows_the_commands_this_test_runs() -> None:
    page = (ROOT / "docs" / "quickstart.md").read_text()
    for command in (
        "python manage.py migrate",
        "celery -A proj worker --loglevel=INFO",
        "python manage.py runserver",
        'curl -X POST -H "X-Assignation-ID: checkout-42" -d reference=A-1 '
        "http://127.0.0.1:8000/orders/",
        "python manage.py koherent_history checkout-42",
    ):
        assert command in page, command
    assert "python manage.py shell < undo.py" in (PROJECT / "undo.py").read_text()
