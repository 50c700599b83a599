"""Which real services the tests may use, and what to do when one is missing.

The test command (``make test``) probes PostgreSQL, Redis and RabbitMQ and passes what it found
in ``KOHERENT_SERVICES`` (comma-separated). A test that needs a missing service is skipped,
unless ``KOHERENT_REQUIRE_SERVICES=1`` (set by CI), which turns the skip into a failure.
Without ``KOHERENT_SERVICES`` (running pytest by hand) the services are probed here.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
from urllib.parse import urlparse

import pytest

DEFAULT_URLS = {
    "postgres": "postgres://postgres@127.0.0.1:5432/postgres",
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
URL_VARIABLES = {
    "postgres": "DATABASE_URL",
    "redis": "KOHERENT_REDIS_URL",
    "rabbitmq": "KOHERENT_RABBITMQ_URL",
}


def url(service: str) -> str:
    """The URL of ``service`` (from its environment variable, else the local default)."""
    return os.environ.get(URL_VARIABLES[service]) or DEFAULT_URLS[service]


def _reachable(service: str) -> bool:
    parsed = urlparse(url(service))
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or {"postgres": 5432, "redis": 6379, "rabbitmq": 5672}[service]
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@functools.cache
def available() -> frozenset[str]:
    listed = os.environ.get("KOHERENT_SERVICES")
    if listed is not None:
        return frozenset(s for s in listed.split(",") if s)
    return frozenset(s for s in URL_VARIABLES if _reachable(s))


def required() -> bool:
    return os.environ.get("KOHERENT_REQUIRE_SERVICES") == "1"


def need(service: str) -> None:
    """Skip (or, in CI, fail) the calling test when ``service`` is not available."""
    if service in available():
        return
    message = f"{service} is not available ({url(service)})"
    if required():
        pytest.fail(f"{message}, and KOHERENT_REQUIRE_SERVICES=1")
    pytest.skip(message)


#: The browser the admin's browser test drives, and its WebDriver (Debian: chromium,
#: chromium-driver; ``.ci/run`` installs them when missing).
BROWSER_PROGRAMS = ("chromium", "chromedriver")


def need_browser() -> tuple[str, str]:
    """The paths of Chromium and chromedriver; skip (or, in CI, fail) without them."""
    found = [shutil.which(name) for name in BROWSER_PROGRAMS]
    if all(found):
        return found[0] or "", found[1] or ""
    missing = ", ".join(n for n, path in zip(BROWSER_PROGRAMS, found, strict=True) if not path)
    message = f"{missing} not found on PATH (apt-get install chromium chromium-driver)"
    if required():
        pytest.fail(f"{message}, and KOHERENT_REQUIRE_SERVICES=1")
    pytest.skip(message)


def summary() -> str:
    found = available()
    return ", ".join(f"{s} {'up' if s in found else 'down'}" for s in URL_VARIABLES)
