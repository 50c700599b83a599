"""A real ``db_worker`` process (django-tasks-db's worker command) on the test database.

It takes tasks from one queue, named with a random suffix so parallel test runs never take each
other's tasks, and reaches the test database pytest-django made through
``KOHERENT_TEST_DB_NAME`` (read by ``tests/settings.py``): tests using it must be transactional.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.celery.harness import terminate, wait_for

ROOT = Path(__file__).resolve().parents[2]
BACKEND = "database"


@dataclass
class DbWorker:
    database_name: str
    log_path: Path
    #: At most 32 characters (the queue name column's length).
    queue: str = field(default_factory=lambda: f"kt-{uuid.uuid4().hex[:12]}")
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from tests.tasks import jobs

        command = [
            *(sys.executable, "-m", "django", "db_worker", "--backend", BACKEND),
            *("--queue-name", self.queue, "--interval", "0.05"),
            *("--no-startup-delay", "--no-reload", "--verbosity", "1"),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "KOHERENT_TEST_DB": "postgres",
            "KOHERENT_TEST_DB_NAME": self.database_name,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self.wait([self.task(jobs.echo_kwargs).enqueue()], timeout=90)
        except BaseException:
            self.stop()
            raise

    def task(self, task: Any) -> Any:
        """``task`` sent to this worker."""
        return task.using(backend=BACKEND, queue_name=self.queue)

    def wait(self, results: Iterable[Any], timeout: float = 60) -> None:
        """Wait until every result is finished (refreshing them)."""
        pending = list(results)

        def done() -> bool:
            if not self.alive():
                pytest.fail(f"the db_worker exited:\n{self.log()[-4000:]}")
            for result in list(pending):
                result.refresh()
                if result.is_finished:
                    pending.remove(result)
            return not pending

        wait_for(done, timeout=timeout, what=f"{len(pending)} tasks on the db_worker")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30) -> str:
        wait_for(lambda: text in self.log(), timeout=timeout, what=f"{text!r} in the log")
        return self.log()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            terminate(process, signal.SIGTERM, grace=10)
