"""Start uvicorn on the test database, serving tests.graphql.server_asgi on a free port.

The server is started by :func:`tests.aio.servers.running_server`, which binds the listening
socket (127.0.0.1, a port the OS picks) and hands it to uvicorn as a file descriptor. Tests
using the server must be transactional: it reads committed rows only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.aio.servers import Server
from tests.aio.servers import running_server as running_http_server

APPLICATION = "tests.graphql.server_asgi:application"
SETTINGS = "tests.graphql.server_settings"


@contextmanager
def graphql_server(settings: str = SETTINGS) -> Iterator[Server]:
    """Run the GraphQL server until the block ends (``settings``: its settings module)."""
    with running_http_server(
        "uvicorn", application=APPLICATION, settings=settings, ready_path="/whoami/"
    ) as server:
        yield server


@contextmanager
def running_server() -> Iterator[str]:
    """Run the server with the GraphQL tests' settings until the block ends; yields its URL."""
    with graphql_server() as server:
        yield server.url
