"""Deprecated: :mod:`koherent.django_tasks.compat` (importing this warns, and gives that)."""

from koherent.tasks import alias_submodule

alias_submodule(__name__)
