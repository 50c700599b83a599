"""Settings of service B of the two-service test: a GraphQL API on a database of its own
(``KOHERENT_TEST_DB_NAME``), taking the app of a call from its ``X-Koherent-App`` header."""

from tests.settings import *  # noqa: F403
from tests.settings import MIDDLEWARE

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "simple_history",
    "koherent",
    "tests.testapp",
]
MIDDLEWARE = [m for m in MIDDLEWARE if "messages" not in m]
ROOT_URLCONF = "tests.http.service_b_urls"
TASKS = {}

# Signal capture: its database is migrated by ``migrate`` alone (no triggers installed).
KOHERENT = {
    "APP": "service-b",
    "APP_RESOLVER": "koherent.resolvers.header_app",
    "CAPTURE": "signal",
}
