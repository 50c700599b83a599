"""A real HTTP server on loopback that answers with the headers it received.

``GET /echo`` answers ``{"headers": {...}}`` (names in lower case); ``GET /redirect?to=URL``
answers 302 to ``URL``. It runs in a thread of the test process, on a port the OS picks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@contextmanager
def echo_server() -> Iterator[int]:
    """Serve until the block ends; yields the port (listening on 127.0.0.1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


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
