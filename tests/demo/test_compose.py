"""compose/: the file parses, names the services a deployment runs, and every command in it (and
in its Dockerfile) is a real entry point of the example project.

No container engine is needed: the entry points are checked by importing them in a process
configured as the containers are (compose/.env.example), with SQLite in place of PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    return data


def command(service: dict[str, Any]) -> list[str]:
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def env_example() -> dict[str, str]:
    values = {}
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_the_deployment_services_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "migrate"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert services["web"]["ports"] == ["8000:8000"]


def test_the_app_services_share_one_image_and_wait_for_their_dependencies(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "compose/Dockerfile"}
        assert service["image"] == services["migrate"]["image"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        env_files = [entry["path"] for entry in service["env_file"]]
        assert env_files[0] == ".env.example"
    assert (COMPOSE / services["web"]["build"]["dockerfile"].split("/")[-1]).is_file()
    assert (COMPOSE / services["web"]["build"]["context"]).resolve() == ROOT


def test_the_commands_are_the_examples_entry_points(compose: dict[str, Any]) -> None:
    services = compose["services"]
    web = command(services["web"])
    assert web[:2] == ["uvicorn", "example.asgi:application"]
    assert "--host=0.0.0.0" in web
    assert "--port=8000" in web
    assert command(services["worker"])[:4] == ["celery", "-A", "example", "worker"]
    assert command(services["beat"])[:4] == ["celery", "-A", "example", "beat"]
    migrate = command(services["migrate"])
    assert migrate[:2] == ["sh", "-c"]
    steps = [shlex.split(step) for step in migrate[2].split("&&")]
    assert steps == [
        ["python", "manage.py", "migrate", "--no-input"],
        ["python", "manage.py", "seed"],
    ]
    assert "/admin/login/" in " ".join(services["web"]["healthcheck"]["test"])


def test_the_dockerfile_copies_what_exists_and_installs_real_extras() -> None:
    lines = (COMPOSE / "Dockerfile").read_text().splitlines()
    copies = [shlex.split(line)[1:-1] for line in lines if line.startswith("COPY ")]
    sources = [source for sources in copies for source in sources]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
    extras = re.search(r'pip install "\.\[([a-z,]+)\]"((?: --group [a-z]+)*)', "\n".join(lines))
    assert extras is not None
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(extras.group(1).split(",")) <= set(pyproject["project"]["optional-dependencies"])
    groups = extras.group(2).split()[1::2]
    assert groups == ["example"]
    assert set(groups) <= set(pyproject["dependency-groups"])
    assert "WORKDIR /app/examples" in lines
    assert (EXAMPLES / "manage.py").is_file()
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert json.loads(cmd[4:])[:2] == ["uvicorn", "example.asgi:application"]
    ignore = (COMPOSE / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!koherent/**" in ignore
    assert "!examples/**" in ignore


def test_the_env_example_configures_the_services(compose: dict[str, Any]) -> None:
    values = env_example()
    postgres = compose["services"]["postgres"]["environment"]
    assert values["DATABASE_URL"] == (
        f"postgres://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert values["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    settings = (EXAMPLES / "example" / "settings.py").read_text()
    for key in values:
        assert f'"{key}"' in settings or key.startswith("DJANGO_SUPERUSER_"), key
    seed = (EXAMPLES / "shop" / "management" / "commands" / "seed.py").read_text()
    assert '"DJANGO_SUPERUSER_USERNAME"' in seed
    assert '"DJANGO_SUPERUSER_PASSWORD"' in seed


PROBE = """
import json, sys
from celery import Celery
import koherent.celery
import example.asgi
from example.celery import app
from django.core.management import get_commands
app.loader.import_default_modules()
schedule = app.conf.beat_schedule
print(json.dumps({
    "asgi": callable(example.asgi.application),
    "celery": isinstance(app, Celery),
    "installed": app in koherent.celery.installed_apps(),
    "broker": app.conf.broker_url,
    "backend": app.conf.result_backend,
    "beat_tasks": sorted(entry["task"] for entry in schedule.values()),
    "registered": sorted(name for name in app.tasks if name.startswith("shop.")),
    "commands": sorted(name for name in ("migrate", "seed") if name in get_commands()),
}))
"""


def test_the_entry_points_load_as_the_containers_load_them(tmp_path: Path) -> None:
    """``example.asgi:application`` (uvicorn), ``-A example`` (celery), ``manage.py migrate``
    and ``seed``: imported with the compose environment, SQLite standing in for PostgreSQL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.pop("DATABASE_URL", None)
    env.update(env_example())
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", EXAMPLE_DATA_DIR=str(tmp_path))
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["asgi"] is True
    assert found["celery"] is True
    assert found["installed"] is True
    assert found["broker"] == "redis://redis:6379/0"
    assert found["backend"] == "redis://redis:6379/1"
    assert found["beat_tasks"] == ["shop.tasks.restock_low_products"]
    assert set(found["beat_tasks"]) <= set(found["registered"])
    assert {"shop.tasks.reserve_stock", "shop.tasks.confirm_order", "shop.tasks.ship_order"} <= (
        set(found["registered"])
    )
    assert found["commands"] == ["migrate", "seed"]
