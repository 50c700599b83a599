"""Settings of a service as koherent 0.2.0 users ran it: authentikate users and clients, kante.

``KOHERENT_UPGRADE_STAGE`` says which koherent runs it: ``0.2.0`` (the release, in its own
virtual environment) or ``upgraded`` (this version, after the steps of docs/upgrading.md:
the middleware, ``KOHERENT`` with authentikate's app resolver, and the admin app).
``KOHERENT_UPGRADE_DATABASE_URL`` names the PostgreSQL database.
"""

import os
from urllib.parse import unquote, urlparse

STAGE = os.environ.get("KOHERENT_UPGRADE_STAGE", "0.2.0")
UPGRADED = STAGE != "0.2.0"

SECRET_KEY = "koherent-upgrade-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "legacy_project.urls"
AUTH_USER_MODEL = "authentikate.User"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_url = urlparse(os.environ["KOHERENT_UPGRADE_DATABASE_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": unquote(_url.username or "postgres"),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "127.0.0.1",
        "PORT": str(_url.port or 5432),
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "simple_history",
    "authentikate",
    "koherent",
    "shelf",
]
if UPGRADED:
    INSTALLED_APPS.append("koherent.admin")

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
if UPGRADED:
    MIDDLEWARE.append("koherent.middleware.KoherentMiddleware")
    KOHERENT = {"APP_RESOLVER": "koherent.contrib.authentikate.client_app"}
    if os.environ.get("KOHERENT_UPGRADE_DEFAULT_RESOLVER"):  # koherent.W070's negative
        KOHERENT = {}

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

# authentikate's static tokens (its way of authenticating in tests): one user per token, each
# through its own OAuth2 client.
AUTHENTIKATE = {
    "issuers": [],
    "static_tokens": {
        "alice-token": {
            "sub": "alice",
            "client_id": "alice-lab-app",
            "preferred_username": "alice",
        },
        "bob-token": {"sub": "bob", "client_id": "bob-scanner", "preferred_username": "bob"},
    },
}
