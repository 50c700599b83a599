"""Start uvicorn on the test database, serving tests.graphql.server_asgi on a free port.

The listening socket is bound here (127.0.0.1, a port the OS picks) and handed to uvicorn as a
file descriptor. Tests using the server must be transactional: it reads committed rows only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_server() -> Iterator[str]:
    """Run the server until the block ends; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.graphql.server_settings",
        "KOHERENT_TEST_DATABASE_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        *(sys.executable, "-m", "uvicorn", "tests.graphql.server_asgi:application"),
        *("--fd", str(listener.fileno()), "--loop", "asyncio", "--http", "h11"),
        *("--ws", "websockets", "--lifespan", "off", "--no-access-log"),
        *("--log-level", "warning"),
    ]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            pass_fds=(listener.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        listener.close()
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_serving(process, url, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                process.kill()
                process.wait()


def _wait_until_serving(process: subprocess.Popen[bytes], url: str, log: object) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{_read(log)}")
        try:
            if httpx.get(f"{url}/whoami/", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer within 60 s:\n{_read(log)}")
        time.sleep(0.2)


def _read(log: object) -> str:
    log.seek(0)  # type: ignore[attr-defined]
    return str(log.read())[-4000:]  # type: ignore[attr-defined]
