"""Deprecated: :mod:`koherent.django_tasks.audited` (importing this warns, and gives that)."""

from koherent.tasks import alias_submodule

alias_submodule(__name__)
