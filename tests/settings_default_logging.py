"""The test settings with Django's default logging (no ``LOGGING`` of the project's own): what
a project that configures no logging gets. The real-command test runs under it."""

from __future__ import annotations

from tests.settings import *  # noqa: F403

LOGGING = {}
