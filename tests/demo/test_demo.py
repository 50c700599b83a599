"""``make demo``, run as a newcomer runs it: a real server, a real worker, its exit status.

The demo runs on its embedded defaults (SQLite and kombu's filesystem transport in a temporary
folder): it needs nothing from the test database, and runs in the PostgreSQL pass only.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"

pytestmark = [
    pytest.mark.processes,
    pytest.mark.postgres,
    pytest.mark.skipif(
        Path(sys.prefix).resolve() != VENV.resolve(),
        reason="make demo runs in the repository's .venv; this interpreter is another one",
    ),
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
]

#: Variables of the test run that would point the demo elsewhere than its embedded defaults.
TEST_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "DJANGO_SETTINGS_MODULE",
    "KOHERENT_TEST_DB",
    "PYTHONPATH",
)


def demo_env(tmp_path: Path, marker: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TEST_VARIABLES}
    env.update(TMPDIR=str(tmp_path), KOHERENT_DEMO_TEST_MARKER=marker, **extra)
    return env


def run_make_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = ["make", "--no-print-directory", "demo"]
    if args:
        command.append(f"ARGS={' '.join(args)}")
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def processes_with(marker: str) -> list[str]:
    """The ids of live processes whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"KOHERENT_DEMO_TEST_MARKER={marker}".encode() in environ:
            found.append(entry.name)
    return found


def history_rows(output: str) -> list[list[str]]:
    """The rows of the printed history table, split on its column gaps."""
    lines = output.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["time", "model", "object"]
    )
    rows = []
    for line in lines[start + 2 :]:
        if not re.match(r"\s+\d\d:\d\d:\d\d\.\d{3}\s", line):
            if line.startswith(" " * 20):  # a wrapped "changed fields" cell
                continue
            break
        rows.append(re.split(r"\s{2,}", line.strip(), maxsplit=7))
    return rows


def test_make_demo_tells_the_whole_story_and_exits_zero(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    result = run_make_demo(demo_env(tmp_path, marker))
    output = result.stdout
    assert result.returncode == 0, output + result.stderr

    assert "database: SQLite (embedded)" in output
    assert "broker:   kombu filesystem transport (embedded)" in output
    assert re.search(r"GraphiQL at http://127\.0\.0\.1:\d+/graphql/", output)
    assigned = re.search(r"X-Assignation-ID: (demo-[0-9a-f-]{36})", output)
    assert assigned is not None
    assignation_id = assigned.group(1)
    assert f"echoes X-Assignation-ID: {assignation_id}" in output
    assert "status seen by polling the API: placed -> " in output

    rows = history_rows(output)
    assert len(rows) == 10
    by_model: dict[str, list[str]] = {}
    for _time, model, _obj, action, user, app, task, _fields in rows:
        assert (user, app) == ("alice", "demo-client")
        by_model.setdefault(model, []).append(f"{action} by {task}")
    request_rows = [row for row in rows if row[6] == "(request)"]
    task_ids = {row[6] for row in rows if row[6] != "(request)"}
    assert [(r[1], r[3]) for r in request_rows] == [
        ("Order", "created"),
        ("OrderLine", "created"),
        ("OrderLine", "created"),
        ("Order", "updated"),
    ]
    assert len(task_ids) == 4  # two reservations, the chord's callback, shipping
    assert sorted(by_model) == ["Order", "OrderLine", "Product"]
    assert all("updated by" in change for change in by_model["Product"])
    assert "10 changes, 4 by the request and 6 by 4 Celery tasks" in output

    assert re.search(rf"reverted {assignation_id} as \S+: 3 deleted, 2 restored", output)
    assert "and its lines are gone" in output
    assert "Demo finished in" in output
    assert "every step passed" in output
    assert "DEMO FAILED" not in output

    assert processes_with(marker) == []
    assert list(tmp_path.glob("koherent-demo-*")) == []  # its folder is removed


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there any more


def test_a_failed_step_exits_non_zero_and_stops_what_it_started(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    broker = f"redis://127.0.0.1:{closed_port()}/0"
    result = run_make_demo(demo_env(tmp_path, marker, CELERY_BROKER_URL=broker), "--timeout", "6")
    output = result.stdout

    assert result.returncode != 0
    assert f"broker:   {broker}" in output
    assert "GraphiQL at" in output  # the server had started ...
    assert "DEMO FAILED: the worker did not log ' ready.' within 6 s" in output
    assert "--- last lines of the worker log" in output
    assert "every step passed" not in output
    assert processes_with(marker) == []  # ... and the worker and the server are stopped
    assert list(tmp_path.glob("koherent-demo-*")) == []
