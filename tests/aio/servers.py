"""Start a real HTTP server (uvicorn or gunicorn) on the test database, on a free port.

By default the server runs ``tests.aioapp`` with ``tests.settings``; ``application``,
``settings`` and ``ready_path`` serve another application (the GraphQL tests' server does).
The listening socket is made here, bound to 127.0.0.1 on a port the OS picks, and handed to the
server as an open file descriptor: no fixed port, and no window in which another process could
take it. The server reaches the test database through ``KOHERENT_TEST_DB_NAME``, so tests
using it must be transactional (their rows committed, visible to the server); ``env`` adds or
overrides environment variables (another database, another service's address).
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
from typing import IO

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


APPLICATIONS = {
    "uvicorn": "tests.aioapp.asgi:application",
    "gunicorn": "tests.aioapp.wsgi:application",
}


def _command(kind: str, fd: int, application: str) -> list[str]:
    if kind == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", application),
            *("--fd", str(fd), "--loop", "asyncio", "--http", "h11", "--ws", "websockets"),
            *("--lifespan", "off", "--timeout-keep-alive", "120"),
            *("--no-access-log", "--log-level", "warning"),
        ]
    if kind == "gunicorn":
        return [
            *(sys.executable, "-m", "gunicorn", application),
            *("--bind", f"fd://{fd}", "--worker-class", "gthread", "--workers", "1"),
            *("--threads", "4", "--keep-alive", "120", "--graceful-timeout", "5"),
            *("--log-level", "warning"),
        ]
    raise ValueError(f"unknown server {kind!r}")


@dataclass
class Server:
    url: str
    log: IO[str]
    ready_path: str = "/aio/whoami-sync/"
    #: The server's process id (the memory scenario reads its resident memory).
    pid: int = 0

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def output(self) -> str:
        """Everything the server printed so far."""
        self.log.seek(0)
        return self.log.read()


@contextmanager
def running_server(
    kind: str,
    *,
    application: str | None = None,
    settings: str = "tests.settings",
    ready_path: str = "/aio/whoami-sync/",
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Run ``kind`` ("uvicorn" or "gunicorn") until the block ends.

    ``application`` is the ASGI or WSGI application's ``module:name`` (default: the aio test
    app's), ``settings`` the Django settings module, ``ready_path`` a path answering 200 once
    the server serves.
    """
    if kind not in APPLICATIONS:
        raise ValueError(f"unknown server {kind!r}")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "KOHERENT_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            _command(kind, listener.fileno(), application or APPLICATIONS[kind]),
            cwd=ROOT,
            env=environment,
            pass_fds=(listener.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        listener.close()
        server = Server(
            url=f"http://127.0.0.1:{port}", log=log, ready_path=ready_path, pid=process.pid
        )
        try:
            _wait_until_serving(process, server)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                process.kill()
                process.wait()


def _wait_until_serving(process: subprocess.Popen[bytes], server: Server) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{_tail(server)}")
        try:
            if httpx.get(f"{server.url}{server.ready_path}", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer within 60 s:\n{_tail(server)}")
        time.sleep(0.2)


def _tail(server: Server) -> str:
    return "\n".join(server.output().splitlines()[-40:])
