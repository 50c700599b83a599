#!/usr/bin/env python
"""The small koherent 0.2.0 project of the upgrade test (see tests/upgrade/test_upgrade_020.py)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
