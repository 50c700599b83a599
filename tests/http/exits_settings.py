"""Settings of the server of the context-exit tests: the test project, whose outgoing calls
may carry the assignation to the echo server at ``KOHERENT_ECHO_HOST`` (``host:port``)."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import CAPTURE

ROOT_URLCONF = "tests.http.exits_urls"

KOHERENT = {
    "APP": "exits",
    "CAPTURE": CAPTURE,  # that of the test database this server writes to
    "OUTGOING_HOSTS": [os.environ["KOHERENT_ECHO_HOST"]],
}
