"""Fixtures of the outgoing HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.http.echo import Echo, echo_server


@pytest.fixture(scope="session")
def echo_port() -> Iterator[int]:
    with echo_server() as port:
        yield port


@pytest.fixture
def echo(echo_port: int, settings: Any) -> Echo:
    """The echo server, with its 127.0.0.1 name (only) on ``OUTGOING_HOSTS``."""
    settings.KOHERENT = {**settings.KOHERENT, "OUTGOING_HOSTS": [f"127.0.0.1:{echo_port}"]}
    return Echo(echo_port)
