"""The two services of the two-service test: their databases and their uvicorn servers.

Each server gets a listening socket bound here on 127.0.0.1 (a port the OS picks), passed to
uvicorn as an open file descriptor, so no port is fixed and none can be taken in between.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    url: str
    port: int
    log: IO[str]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


@contextmanager
def listening_socket() -> Iterator[socket.socket]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.set_inheritable(True)
        yield listener
    finally:
        listener.close()


@contextmanager
def running_service(listener: socket.socket, env: Mapping[str, str]) -> Iterator[Service]:
    """Serve ``tests.http.asgi`` with uvicorn on ``listener`` until the block ends."""
    command = [
        *(sys.executable, "-m", "uvicorn", "tests.http.asgi:application"),
        *("--fd", str(listener.fileno()), "--loop", "asyncio", "--http", "h11"),
        *("--lifespan", "off", "--no-access-log", "--log-level", "warning"),
    ]
    port = listener.getsockname()[1]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            pass_fds=(listener.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        listener.close()
        service = Service(url=f"http://127.0.0.1:{port}", port=port, log=log)
        try:
            _wait_until_serving(process, service)
            yield service
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                process.kill()
                process.wait()


def _wait_until_serving(process: subprocess.Popen[bytes], service: Service) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"the service exited with {process.returncode}:\n{service.output()}"
            )
        try:
            if httpx.get(f"{service.url}/whoami/", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service did not answer within 60 s:\n{service.output()}")
        time.sleep(0.2)


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
        return connection.execute(statement, params).fetchall()  # type: ignore[arg-type]
