"""Trigger capture runs on PostgreSQL only: on another backend its tests are not collected.

The tests of the ``update()`` capture of signal-captured models (``test_update.py``,
``test_revert.py``, on the ``captureapp`` models) run on every backend.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

EVERY_BACKEND = ("test_update.py", "test_revert.py")

if not str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql"):
    collect_ignore = [
        path.name
        for path in Path(__file__).parent.glob("test_*.py")
        if path.name not in EVERY_BACKEND
    ]
