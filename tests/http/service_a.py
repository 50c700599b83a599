"""Settings of service A of the two-service test: the test project, sending the assignation
(and its app) to service B, whose ``host:port`` is in ``KOHERENT_SERVICE_B_HOST``."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import CAPTURE

ROOT_URLCONF = "tests.http.service_a_urls"

KOHERENT = {
    "APP": "service-a",
    "CAPTURE": CAPTURE,  # that of the test database this service writes to
    "OUTGOING_HOSTS": [os.environ["KOHERENT_SERVICE_B_HOST"]],
    "OUTGOING_APP_HEADER": "X-Koherent-App",
}
