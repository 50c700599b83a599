"""Registers the assignation admin on the default site (found by ``admin.autodiscover()``).

Only imported when ``"koherent.admin"`` is installed. For another admin site, register
``Assignation`` with :class:`koherent.admin.AssignationAdmin` there yourself.
"""

from __future__ import annotations

from django.contrib import admin

from koherent.admin.core import AssignationAdmin
from koherent.models import Assignation

if not admin.site.is_registered(Assignation):
    admin.site.register(Assignation, AssignationAdmin)
