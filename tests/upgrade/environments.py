"""The environments of the upgrade test, built once under ``.cache/upgrade/`` and reused.

* ``venv-0.2.0``: a virtual environment with the real koherent 0.2.0 from the package index
  and what its services ran with (authentikate, kante 1.1.0, graphql-core < 3.3), from
  ``requirements-0.2.0.txt``. Rebuilt when that file changes or the environment is broken.
* ``authentikate-<version>``: authentikate alone (``pip install --no-deps --target``), put on
  the main environment's path so that an upgraded project keeps authentikate's models and
  migrations (its user model and ``Client``) without kante, whose pins conflict with the
  main environment's strawberry (kante 1.1.0 pins strawberry-graphql 0.291.3 and
  graphql-core < 3.3). Its models, migrations and admin need only Django.

A build takes the cache's lock, so concurrent test runs build it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = Path(os.environ.get("KOHERENT_UPGRADE_CACHE", ROOT / ".cache" / "upgrade"))
REQUIREMENTS = HERE / "requirements-0.2.0.txt"
#: The authentikate the 0.2.0 environment pins (read from ``requirements-0.2.0.txt``).
AUTHENTIKATE = next(
    line.strip()
    for line in REQUIREMENTS.read_text().splitlines()
    if line.startswith("authentikate==")
)
BUILD_TIMEOUT = 900


@contextmanager
def _locked() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _pip(python: Path | str, *args: str) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(args)} failed:\n{result.stderr[-4000:]}")


def _works(python: Path) -> bool:
    """Whether ``python`` runs and imports koherent 0.2.0 (its base interpreter may be gone)."""
    try:
        result = subprocess.run(
            [str(python), "-c", "import koherent.vars, authentikate, kante"],
            capture_output=True,
            timeout=120,
        )
    except OSError:
        return False
    return result.returncode == 0


def legacy_python() -> Path:
    """The Python of the koherent 0.2.0 environment, built if missing or stale."""
    venv = CACHE / "venv-0.2.0"
    python = venv / "bin" / "python"
    stamp = venv / ".koherent-requirements"
    # Keyed by the requirements alone: any Python koherent 0.2.0 supports will do, so the
    # cells of the version matrix share the environment the first run built.
    wanted = _digest(REQUIREMENTS.read_text())
    with _locked():
        if stamp.exists() and stamp.read_text() == wanted and _works(python):
            return python
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, timeout=BUILD_TIMEOUT
        )
        _pip(python, "-r", str(REQUIREMENTS))
        stamp.write_text(wanted)
    return python


def authentikate_path() -> Path:
    """A folder holding authentikate alone, for the main environment's ``PYTHONPATH``."""
    target = CACHE / AUTHENTIKATE.replace("==", "-")
    stamp = target / ".koherent-installed"
    with _locked():
        if stamp.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        _pip(sys.executable, "--no-deps", "--target", str(target), AUTHENTIKATE)
        stamp.write_text(AUTHENTIKATE)
    return target
