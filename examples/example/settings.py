"""Settings of the example shop.

Everything comes from the environment, with defaults that need no server at all:

- ``DATABASE_URL``: the database (default: SQLite in ``EXAMPLE_DATA_DIR``);
- ``CELERY_BROKER_URL``: the broker (default: kombu's filesystem transport, queues as files in
  ``EXAMPLE_DATA_DIR``); ``CELERY_RESULT_BACKEND`` (default: the Redis broker itself, else
  Celery's filesystem backend, which is enough for chords);
- ``EXAMPLE_DATA_DIR``: where the embedded defaults keep their files (default ``examples/.data``);
- ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG``, ``DJANGO_ALLOWED_HOSTS``, ``KOHERENT_SIGNING_KEY``;
- ``KOHERENT_CAPTURE``: ``trigger`` for trigger capture on PostgreSQL (signal capture otherwise).

compose/.env.example lists them for a deployment.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EXAMPLE_DATA_DIR") or BASE_DIR / ".data")
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
CSRF_TRUSTED_ORIGINS = [
    origin for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if origin
]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "simple_history",
    "koherent",
    "koherent.admin",  # assignation list, timeline and revert in the admin
    "strawberry_django",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "koherent.middleware.KoherentMiddleware",  # after authentication
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example.urls"
ASGI_APPLICATION = "example.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The web process and the worker share the file: readers do not block the writer (WAL),
    # and a writer waits for the lock, taken when its transaction starts, instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

STATIC_URL = "/static/"
#: Serve the admin's CSS and JavaScript from the ASGI app itself (example/asgi.py). A deployment
#: with a web server or CDN in front turns it off and runs ``collectstatic``.
SERVE_STATIC = os.environ.get("EXAMPLE_SERVE_STATIC", "1") == "1"
STATIC_ROOT = DATA_DIR / "static"

# Koherent: the client names its app in the X-Koherent-App header (the GraphiQL page and the
# admin, which send none, are "shop-web"). A client can put any app name there: use
# koherent.resolvers.oauth2_app, or your own resolver, where the app must be proven.
KOHERENT = {
    "APP_RESOLVER": "koherent.resolvers.header_app",
    "APP": "shop-web",
    "SIGNING_KEY": os.environ.get("KOHERENT_SIGNING_KEY") or None,  # None: SECRET_KEY
}

# Trigger capture (KOHERENT_CAPTURE=trigger, as compose/.env.example sets it): on PostgreSQL,
# the database writes the history of every change, queryset.update() and raw SQL included.
# The shop's migrations are the same for both modes, so pgtrigger installs the triggers after
# each ``migrate`` (PGTRIGGER_INSTALL_ON_MIGRATE); a project with one mode would let
# makemigrations write them instead. The embedded SQLite default keeps signal capture.
if os.environ.get("KOHERENT_CAPTURE") == "trigger" and DATABASES["default"]["ENGINE"].endswith(
    "postgresql"
):
    KOHERENT["CAPTURE"] = "trigger"
    INSTALLED_APPS.append("pgtrigger")
    PGTRIGGER_INSTALL_ON_MIGRATE = True
    PGTRIGGER_MIGRATIONS = False

# Celery (example/celery.py reads every CELERY_* setting).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://localhost/"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # No broker to install: messages are files in one folder the web process writes and the
    # worker reads.
    _queue_dir = DATA_DIR / "broker"
    _queue_dir.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(DATA_DIR / "broker-control"),
        "polling_interval": 0.2,
    }
    _default_backend = f"file://{DATA_DIR / 'results'}"
    (DATA_DIR / "results").mkdir(exist_ok=True)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    _default_backend = CELERY_BROKER_URL
else:
    _default_backend = "rpc://"  # no chords: set CELERY_RESULT_BACKEND
# A chord needs a result backend: its callback runs once every task of its header has stored
# a result.
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or _default_backend
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "restock-low-products": {
        "task": "shop.tasks.restock_low_products",
        "schedule": float(os.environ.get("EXAMPLE_RESTOCK_EVERY", "300")),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"audit": {"()": "koherent.log.AuditContextFilter"}},
    "formatters": {
        "audit": {
            "format": "%(asctime)s %(levelname)s %(name)s [assignation=%(assignation_id)s "
            "user=%(user_id)s app=%(app)s task=%(task_id)s] %(message)s"
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["audit"], "formatter": "audit"}
    },
    "loggers": {
        "shop": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "koherent": {"handlers": ["console"], "level": "WARNING"},
    },
}
