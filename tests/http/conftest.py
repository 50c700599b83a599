"""Fixtures of the outgoing HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.http.echo import echo_server


@dataclass(frozen=True)
class Echo:
    port: int

    @property
    def allowed(self) -> str:
        """The server's base URL by the name on the allow-list."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def unlisted(self) -> str:
        """The same server by a name that is not on the allow-list."""
        return f"http://localhost:{self.port}"


@pytest.fixture(scope="session")
def echo_port() -> Iterator[int]:
    with echo_server() as port:
        yield port


@pytest.fixture
def echo(echo_port: int, settings: Any) -> Echo:
    """The echo server, with its 127.0.0.1 name (only) on ``OUTGOING_HOSTS``."""
    settings.KOHERENT = {**settings.KOHERENT, "OUTGOING_HOSTS": [f"127.0.0.1:{echo_port}"]}
    return Echo(echo_port)
