"""The databases of the two-service test (its servers come from :mod:`tests.aio.servers`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]


def _connect(settings_dict: Mapping[str, Any], dbname: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=settings_dict.get("HOST") or "127.0.0.1",
        port=settings_dict.get("PORT") or 5432,
        user=settings_dict.get("USER") or "postgres",
        password=settings_dict.get("PASSWORD") or None,
        dbname=dbname,
        autocommit=True,
    )


@contextmanager
def service_database(
    name: str, settings_module: str, settings_dict: Mapping[str, Any]
) -> Iterator[str]:
    """A fresh PostgreSQL database ``name``, migrated for ``settings_module``; dropped after."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with _connect(settings_dict, "postgres") as connection:
        connection.execute(drop)
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--skip-checks", "--verbosity", "0"],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "DJANGO_SETTINGS_MODULE": settings_module,
                "KOHERENT_TEST_DB": "postgres",
                "KOHERENT_TEST_DB_NAME": name,
            },
            check=True,
            timeout=300,
        )
        yield name
    finally:
        with _connect(settings_dict, "postgres") as connection:
            connection.execute(drop)


def query(name: str, settings_dict: Mapping[str, Any], statement: str, *params: Any) -> list[Any]:
    """The rows ``statement`` selects in database ``name``."""
    with _connect(settings_dict, name) as connection:
        return connection.execute(statement, params).fetchall()
