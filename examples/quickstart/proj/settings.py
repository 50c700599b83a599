# proj/settings.py
import os

import dj_database_url

SECRET_KEY = os.environ.get("SECRET_KEY", "quickstart-only-not-a-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "proj.urls"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "simple_history",
    "koherent",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "koherent.middleware.KoherentMiddleware",  # after authentication
]
DATABASES = {
    "default": dj_database_url.config(default="postgres://postgres@127.0.0.1:5432/quickstart")
}

KOHERENT = {"APP": "quickstart"}  # the app every request's changes are stamped with

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "quickstart")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # the worker keeps LOGGING, audit fields included

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"audit": {"()": "koherent.log.AuditContextFilter"}},
    "formatters": {
        "audit": {
            "format": "%(levelname)s %(name)s [%(assignation_id)s app=%(app)s "
            "task=%(task_id)s] %(message)s"
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["audit"], "formatter": "audit"}
    },
    "root": {"handlers": ["console"], "level": "INFO"},
}
