"""Which PostgreSQL databases the benchmarks use, and creating them.

Every benchmark database is named after the one in ``DATABASE_URL`` with a suffix, so
benchmarks run by different checkouts on one server never share a database:

* ``<name>_bench_run``: scenarios that build their data as they go (emptied before each one);
* ``<name>_bench_data``: the large query data set, built once and kept between runs;
* ``<name>_bench_tiny_run`` / ``<name>_bench_tiny_data``: the same for the tiny size (CI).

``KOHERENT_BENCH_DATABASE_URL`` points the benchmarks at another server (its database name is
the base of the names above). Only this module creates or drops databases, and only these.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/koherent"


def server_url() -> str:
    return (
        os.environ.get("KOHERENT_BENCH_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or DEFAULT_URL
    )


def base_name() -> str:
    name = urlparse(server_url()).path.lstrip("/")
    return name or "koherent"


def database_name(kind: str, size: str) -> str:
    """The database of ``kind`` (``run`` or ``data``) for ``size`` (``tiny`` or ``full``)."""
    if kind not in ("run", "data"):
        raise ValueError(f"unknown benchmark database kind {kind!r}")
    infix = "_bench_tiny" if size == "tiny" else "_bench"
    return f"{base_name()}{infix}_{kind}"


def _connect_kwargs(dbname: str) -> dict[str, Any]:
    parsed = urlparse(server_url())
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password or None,
        "dbname": dbname,
    }


def server_settings(dbname: str) -> dict[str, Any]:
    """A Django ``DATABASES`` entry for ``dbname`` on the benchmark server."""
    kw = _connect_kwargs(dbname)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": dbname,
        "USER": kw["user"],
        "PASSWORD": kw["password"] or "",
        "HOST": kw["host"],
        "PORT": str(kw["port"]),
        "CONN_MAX_AGE": None,
    }


def _admin_connection() -> Any:
    import psycopg

    return psycopg.connect(**_connect_kwargs("postgres"), autocommit=True)


def _check_name(dbname: str) -> None:
    if "_bench" not in dbname or not dbname.replace("_", "").isalnum():
        raise ValueError(f"refusing to create or drop {dbname!r}: not a benchmark database")


def exists(dbname: str) -> bool:
    with _admin_connection() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
    return row is not None


def create(dbname: str, template: str | None = None) -> None:
    """Create ``dbname`` (a copy of ``template`` when given)."""
    _check_name(dbname)
    from psycopg import sql

    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
    if template is not None:
        _check_name(template)
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(dbname), sql.Identifier(template)
        )
    with _admin_connection() as conn:
        conn.execute(query)


def drop(dbname: str) -> None:
    """Drop ``dbname`` if it exists."""
    _check_name(dbname)
    from psycopg import sql

    with _admin_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


def server_version() -> str:
    with _admin_connection() as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"
