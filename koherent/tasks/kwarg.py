"""Deprecated: :mod:`koherent.django_tasks.kwarg` (importing this warns, and gives that)."""

from koherent.tasks import alias_submodule

alias_submodule(__name__)
