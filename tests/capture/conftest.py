"""Trigger capture runs on PostgreSQL only: on another backend this folder is not collected."""

from __future__ import annotations

from django.conf import settings

if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
    collect_ignore_glob = ["test_*.py"]
