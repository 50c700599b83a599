"""The version matrix: Python 3.11-3.13 x Django 5.2 and 6.0 (where Django supports them).

``make matrix`` runs every cell; ``make test`` runs the default cell fully plus one other.
Each cell runs the suite on PostgreSQL (when up), SQLite and MySQL/MariaDB (when up), without
lint.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"

DJANGO = {"5.2": "Django>=5.2,<5.3", "6.0": "Django>=6.0,<6.1"}
PYPROJECT = nox.project.load_toml("pyproject.toml")


@nox.session(python=["3.11", "3.12", "3.13"])
@nox.parametrize("django", list(DJANGO))
def tests(session: nox.Session, django: str) -> None:
    if django == "6.0" and session.python == "3.11":
        session.skip("Django 6.0 needs Python 3.12 or newer")
    test = nox.project.dependency_groups(PYPROJECT, "test")
    session.install("-e", ".[celery,strawberry]", *test, DJANGO[django])
    session.run(
        "python",
        "scripts/run_tests.py",
        "--no-lint",
        "--no-matrix",
        *session.posargs,
        # The benchmark peers are not installed in matrix cells; the main run covers them.
        env={"KOHERENT_BENCH_OPTIONAL": "1"},
    )
