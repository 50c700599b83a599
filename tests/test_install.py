"""What a user gets from the package index: the built sdist and wheel, installed with only
``pip install koherent`` into a fresh virtual environment.

The environment is built once per test session under a temporary folder (pip's cache makes
the second build fast): the sdist and the wheel are built from this checkout with hatchling,
the wheel is installed without any extra, and each optional integration is imported there.
"""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Nothing here depends on the test database: run in the PostgreSQL pass only, not again on
# SQLite (as the demo's test does).
pytestmark = [pytest.mark.processes, pytest.mark.postgres]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: The public extras, and the integration each one makes importable.
INTEGRATIONS = {
    "koherent.celery": "celery",
    "koherent.strawberry": "strawberry",
    "koherent.http.httpx": "httpx",
    "koherent.http.requests": "requests",
    "koherent.contrib.authentikate": "authentikate",
}


@dataclass(frozen=True)
class FreshInstall:
    python: Path
    sdist: Path
    wheel: Path

    def run(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.python.parents[2],  # not the checkout: only the installed package
            env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"},
        )


def _run(*args: str | Path, cwd: Path = ROOT) -> None:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, cwd=cwd
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> FreshInstall:
    root = tmp_path_factory.mktemp("fresh-install")
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    quiet = ("--quiet", "--disable-pip-version-check")
    dist = root / "dist"
    # The builder in its own environment, as `python -m build` would use.
    builder = root / "builder"
    venv.EnvBuilder(with_pip=True, clear=True).create(builder)
    build_python = builder / "bin" / "python"
    requires = PYPROJECT["build-system"]["requires"]
    _run(build_python, "-m", "pip", "install", *quiet, *requires)
    _run(build_python, "-m", "hatchling", "build", "--target", "sdist", "--target", "wheel",
         "-d", dist)  # fmt: skip
    (sdist,) = dist.glob("koherent-*.tar.gz")
    (wheel,) = dist.glob("koherent-*.whl")
    _run(python, "-m", "pip", "install", *quiet, wheel)  # `pip install koherent`: no extra
    return FreshInstall(python=python, sdist=sdist, wheel=wheel)


@pytest.mark.parametrize(("module", "extra"), INTEGRATIONS.items())
def test_an_integration_without_its_extra_names_the_extra(
    fresh: FreshInstall, module: str, extra: str
) -> None:
    result = fresh.run(
        "import sys\n"
        "import koherent\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as error:\n"
        "    print(type(error).__name__, isinstance(error, ModuleNotFoundError))\n"
        "    print(error)\n"
        "else:\n"
        "    sys.exit('imported without its extra')\n"
    )
    assert result.returncode == 0, result.stderr or result.stdout
    kind, message = result.stdout.splitlines()
    assert kind == "MissingExtra True"
    assert f'pip install "koherent[{extra}]"' in message
    assert module in message
    assert extra in PYPROJECT["project"]["optional-dependencies"]


def test_the_core_and_the_dependency_free_integrations_import_without_extras(
    fresh: FreshInstall,
) -> None:
    result = fresh.run(
        "import importlib.util, koherent, koherent.http, koherent.log, koherent.structlog\n"
        "import koherent.django_tasks  # without a tasks framework; using it says what to do\n"
        "missing = [m for m in ('celery', 'strawberry', 'httpx', 'requests', 'structlog')\n"
        "           if importlib.util.find_spec(m) is not None]\n"
        "print(missing, koherent.__version__)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", PYPROJECT["project"]["version"]]


def test_the_wheel_publishes_only_the_public_extras(fresh: FreshInstall) -> None:
    with zipfile.ZipFile(fresh.wheel) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(name))
        files = wheel.namelist()
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert extras == {
        "celery",
        "strawberry",
        "httpx",
        "requests",
        "tasks",
        "authentikate",
        "postgres",
    }
    requires = " ".join(metadata.get_all("Requires-Dist") or [])
    for tool in ("pytest", "ruff", "mypy", "nox", "django-auditlog", "mkdocs", "uvicorn"):
        assert tool not in requires, tool
    assert "koherent/py.typed" in files
    assert not any(n.startswith(("tests/", "docs/", "examples/")) for n in files)
    # The long description links somewhere from the package index: no relative link.
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert "](docs/" not in description
    assert "](examples/" not in description


def test_the_sdist_carries_the_docs_the_readme_links(fresh: FreshInstall) -> None:
    with tarfile.open(fresh.sdist) as sdist:
        names = {"/".join(n.split("/")[1:]) for n in sdist.getnames()}
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages
    assert pages <= names
    assert {"README.md", "CHANGELOG.md", "LICENSE", "mkdocs.yml", "pyproject.toml"} <= names
    assert "examples/quickstart/proj/settings.py" in names
    assert "koherent/py.typed" in names
    assert not any(n.startswith(("tests/", "benchmarks/", ".venv/")) for n in names)


def test_development_dependencies_are_groups() -> None:
    groups = PYPROJECT["dependency-groups"]
    assert {"test", "lint", "dev", "bench", "example", "docs"} <= set(groups)
    assert not {"test", "lint", "dev", "bench", "example", "docs"} & set(
        PYPROJECT["project"]["optional-dependencies"]
    )
    makefile = (ROOT / "Makefile").read_text()
    for group in groups:
        assert f"--group {group}" in makefile, group


def test_this_interpreter_is_not_the_fresh_one(fresh: FreshInstall) -> None:
    """Negative control: the fresh environment really lacks what this one has."""
    assert Path(sys.executable).resolve() != fresh.python.resolve()
    result = fresh.run("import celery")
    assert result.returncode != 0
    assert "No module named 'celery'" in result.stderr
