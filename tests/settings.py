"""Settings of the small Django project the test suite runs in.

The database comes from ``KOHERENT_TEST_DB``: ``postgres`` (default; the server in
``DATABASE_URL``, default ``postgres://postgres@127.0.0.1:5432/koherent``) or ``sqlite``.

The capture mode of every ``HistoryField`` that does not say comes from
``KOHERENT_TEST_CAPTURE``: ``trigger`` (the default on PostgreSQL) or ``signal`` (the default,
and the only mode, elsewhere).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import dj_database_url
import django

BASE_DIR = os.path.dirname(os.path.abspath(__file__))

SECRET_KEY = "koherent-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

TEST_DB = os.environ.get("KOHERENT_TEST_DB", "postgres")
DATABASES: dict[str, Any]
if TEST_DB == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(BASE_DIR, ".koherent-test.sqlite3"),
            "TEST": {"NAME": os.environ.get("KOHERENT_SQLITE_TEST_NAME")},
        },
        # The second database of the multi-database tests (tests/test_multidb.py).
        "other": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(BASE_DIR, ".koherent-test-other.sqlite3"),
            "TEST": {
                "NAME": (
                    f"{os.environ['KOHERENT_SQLITE_TEST_NAME']}-other"
                    if os.environ.get("KOHERENT_SQLITE_TEST_NAME")
                    else None
                )
            },
        },
    }
elif TEST_DB == "postgres":
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/koherent"),
            conn_max_age=0,
        )
    }
    # The second database of the multi-database tests (tests/test_multidb.py).
    DATABASES["other"] = {
        **DATABASES["default"],
        "NAME": f"{DATABASES['default']['NAME']}_other",
    }
elif TEST_DB == "mysql":
    # MySQL/MariaDB, for the tests of the portable update() capture (no RETURNING on UPDATE):
    # KOHERENT_TEST_DB=mysql, the server in KOHERENT_MYSQL_URL, through PyMySQL.
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ.get("KOHERENT_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
            conn_max_age=0,
        )
    }
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("KOHERENT_MYSQL_TEST_NAME", "test_koherent"),
        "CHARSET": "utf8mb4",
    }
    # The second database of the multi-database tests (tests/test_multidb.py).
    DATABASES["other"] = {
        **DATABASES["default"],
        "TEST": {
            **DATABASES["default"]["TEST"],
            "NAME": f"{DATABASES['default']['TEST']['NAME']}_other",
        },
    }
else:  # pragma: no cover
    raise RuntimeError(
        f"KOHERENT_TEST_DB must be 'postgres', 'sqlite' or 'mysql', not {TEST_DB!r}"
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "simple_history",
    "koherent",
    "koherent.admin",
    "tests.testapp",
    "tests.undoapp",
    "tests.aioapp",
    "tests.multidbapp",
    "tests.captureapp",
]

# Trigger capture (koherent.capture) runs on PostgreSQL only: its test app is installed there.
if TEST_DB == "postgres":
    INSTALLED_APPS += ["pgtrigger", "tests.capture"]

# Django's tasks framework (koherent.django_tasks): Django's own from 6.0, else the django-tasks
# backport; the database backend of django-tasks-db, run by its db_worker command in the tests.
_TASKS_PACKAGE = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
if importlib.util.find_spec("django_tasks_db") and importlib.util.find_spec(_TASKS_PACKAGE):
    if _TASKS_PACKAGE == "django_tasks":
        INSTALLED_APPS.append("django_tasks")
    INSTALLED_APPS.append("django_tasks_db")
    TASKS: dict[str, Any] = {
        "default": {"BACKEND": f"{_TASKS_PACKAGE}.backends.immediate.ImmediateBackend"},
        "database": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
    }

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "koherent.middleware.KoherentMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
AUTH_USER_MODEL = "testapp.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"

# The project-wide capture mode: the whole suite runs on trigger-written history on PostgreSQL
# (KOHERENT_TEST_CAPTURE=signal runs it on signal capture there). The test apps' migrations are
# shared by both modes: tests/conftest.py installs the triggers they do not hold.
CAPTURE = os.environ.get("KOHERENT_TEST_CAPTURE") or (
    "trigger" if TEST_DB == "postgres" else "signal"
)
if CAPTURE not in ("signal", "trigger") or (CAPTURE == "trigger" and TEST_DB != "postgres"):
    raise RuntimeError(
        f"KOHERENT_TEST_CAPTURE must be 'signal', or 'trigger' on PostgreSQL, not {CAPTURE!r}"
    )

KOHERENT: dict[str, Any] = {
    "APP": "tests",
    "CAPTURE": CAPTURE,
    # The test connections do not persist (CONN_MAX_AGE 0): the history function is used on
    # them all the same, so that the reads the tests make take it (its own tests cover the
    # default, "persistent").
    "HISTORY_FUNCTION": "always",
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"koherent": {"handlers": ["console"], "level": "WARNING"}},
}

# Processes the tests start (servers, Celery workers) use the test database pytest-django made.
if os.environ.get("KOHERENT_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["KOHERENT_TEST_DB_NAME"]

# The database-fault scenarios (tests/soak/test_database_faults.py) run their servers and
# workers with persistent connections and health checks on and off.
if os.environ.get("KOHERENT_TEST_CONN_MAX_AGE"):
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["KOHERENT_TEST_CONN_MAX_AGE"])
if os.environ.get("KOHERENT_TEST_CONN_HEALTH_CHECKS"):
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = (
        os.environ["KOHERENT_TEST_CONN_HEALTH_CHECKS"] == "1"
    )
