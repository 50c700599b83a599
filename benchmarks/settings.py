"""Settings of the benchmark project: one app per contender, on PostgreSQL.

The database is named by ``KOHERENT_BENCH_DB`` (set by the runner for each scenario); the server
comes from ``KOHERENT_BENCH_DATABASE_URL``, else ``DATABASE_URL``, else the local default.
DEBUG is off, so Django does not keep every query in memory while it is being timed.
"""

from __future__ import annotations

import os

from django_guid.integrations import CeleryIntegration

from benchmarks.databases import server_settings

SECRET_KEY = "koherent-benchmarks-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {"default": server_settings(os.environ.get("KOHERENT_BENCH_DB", "postgres"))}
# The same database through connections with psycopg's prepared statements on (Django turns
# them off by default, for connection poolers): the query scenario measures both.
DATABASES["prepared"] = {
    **DATABASES["default"],
    "OPTIONS": {
        **DATABASES["default"].get("OPTIONS", {}),
        "server_side_binding": True,
        "prepare_threshold": 5,
    },
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "simple_history",
    "koherent",
    "auditlog",
    "reversion",
    "pgtrigger",
    "pghistory",
    "django_guid",
    "benchmarks.contenders.plain",
    "benchmarks.contenders.simplehistory",
    "benchmarks.contenders.koherentapp",
    "benchmarks.contenders.koherenttrigger",
    "benchmarks.contenders.auditlogapp",
    "benchmarks.contenders.reversionapp",
    "benchmarks.contenders.pghistoryapp",
]
# 50 more tracked models that nothing writes: their tables are made by ``prepare``, and the
# ``query_wide`` scenario's project tracks them (see benchmarks/contenders/koherentwide).
if os.environ.get("KOHERENT_BENCH_WIDE") == "1":
    INSTALLED_APPS.append("benchmarks.contenders.koherentwide")

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "benchmarks.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

KOHERENT = {"APP": "bench"}

# The contender apps have no migrations: the runner creates their tables with
# ``migrate --run-syncdb`` and then installs the triggers of pghistory and of Koherent's trigger
# capture (``pgtrigger install``).
PGHISTORY_INSTALL_CONTEXT_FUNC_ON_MIGRATE = True
PGTRIGGER_INSTALL_ON_MIGRATE = False
PGTRIGGER_MIGRATIONS = False

# django-guid: only its Celery integration is measured (default options); the propagation
# scenario connects and disconnects its receivers (benchmarks.propagation).
DJANGO_GUID = {"INTEGRATIONS": [CeleryIntegration()]}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
