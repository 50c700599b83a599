"""System checks for Koherent's configuration (``manage.py check``), one module per area.

Importing this package registers them all (Koherent's app config does, when Django is ready).

=================  ======================================================================
id                 problem
=================  ======================================================================
``koherent.E001``  ``KOHERENT`` is not a dict
``koherent.E002``  ``KOHERENT`` has a key Koherent does not know (a typo, most likely)
``koherent.E003``  a dotted-path setting does not import, or is not callable
``koherent.E004``  a setting has a value of the wrong type or form
``koherent.W001``  ``KoherentMiddleware`` comes before ``AuthenticationMiddleware``
``koherent.E010``  ``KOHERENT["SIGNING_KEY"]`` is empty
``koherent.E011``  ``KOHERENT["SIGNING_KEY_FALLBACKS"]`` holds something other than keys
``koherent.W010``  a Celery app given to ``koherent.celery.install()`` sends protocol 1
                   messages, which are sent without the context
``koherent.W020``  a ``LOGGING`` handler formats ``assignation_id`` without Koherent's filter
``koherent.E030``  ``GRAPHQL_FRESH_ASSIGNATION`` is not ``mutation``, ``operation`` or ``never``
``koherent.W030``  ``GRAPHQL_*`` settings are set, but strawberry-graphql-django is not installed
``koherent.E040``  ``koherent.admin`` is installed without ``django.contrib.admin``
``koherent.W040``  a tracked model deletes its history with the object: its deletes cannot be
                   reverted
``koherent.W041``  ``koherent.admin`` is installed but ``RECORD_ASSIGNATIONS`` is off: the
                   assignation list stays empty
``koherent.E050``  an ``OUTGOING_HOSTS`` entry is not a host, ``host:port`` or ``*.domain``
``koherent.E051``  an ``OUTGOING_*_HEADER`` is not a valid header name, or both name the same
                   header
``koherent.E060``  ``ASSIGNATION_ACCESS`` is not ``owner``, ``any`` or the dotted path of a
                   callable
``koherent.W060``  ``ASSIGNATION_ACCESS`` checks owners, but ``RECORD_ASSIGNATIONS`` is off, so
                   no assignation has an owner and every request may join every assignation
``koherent.W070``  ``authentikate`` is installed, but ``APP_RESOLVER`` does not read its client:
                   GraphQL operations are stamped without the app koherent 0.2 recorded
``koherent.W071``  history rows written by koherent 0.2 are not upgraded yet (run
                   ``koherent_upgrade``); only with ``check --database``
``koherent.E070``  ``CAPTURE`` is not ``signal`` or ``trigger``
``koherent.E071``  a model is captured by triggers, but its database is not PostgreSQL
``koherent.E072``  trigger capture is used, but ``pgtrigger`` is not in ``INSTALLED_APPS``
``koherent.E073``  a model captured by triggers uses something triggers cannot capture (tracked
                   many-to-many fields, multi-table inheritance, a custom ``get_user``, a
                   history column the trigger cannot fill, a key type it does not know)
``koherent.E074``  a PostgreSQL database of a trigger-captured model uses server-side binding,
                   which cannot send the context with the statement
=================  ======================================================================

=====================================  ================================================
module                                 ids
=====================================  ================================================
:mod:`koherent.checks.settings`        E001 to E004, E010, E011, E060, W060
:mod:`koherent.checks.requests`        W001, E050, E051
:mod:`koherent.checks.log`             W020
:mod:`koherent.checks.graphql`         E030, W030
:mod:`koherent.checks.celery`          W010
:mod:`koherent.checks.models`          E040, W040, W041, E070 to E074
:mod:`koherent.checks.upgrade`         W070, W071
=====================================  ================================================
"""

from __future__ import annotations

from koherent.checks.celery import check_celery_protocol
from koherent.checks.graphql import check_graphql_settings
from koherent.checks.log import check_logging_filter
from koherent.checks.models import _trigger_capture_limits as _trigger_capture_limits
from koherent.checks.models import check_capture, check_undo
from koherent.checks.requests import (
    AUTH_MIDDLEWARE_PATH,
    MIDDLEWARE_PATH,
    check_middleware_order,
    check_outgoing_http,
)
from koherent.checks.settings import check_assignation_access, check_settings, check_signing_keys
from koherent.checks.upgrade import (
    AUTHENTIKATE_APP_RESOLVER,
    check_authentikate,
    check_upgraded_rows,
)

__all__ = [
    "AUTHENTIKATE_APP_RESOLVER",
    "AUTH_MIDDLEWARE_PATH",
    "MIDDLEWARE_PATH",
    "check_assignation_access",
    "check_authentikate",
    "check_capture",
    "check_celery_protocol",
    "check_graphql_settings",
    "check_logging_filter",
    "check_middleware_order",
    "check_outgoing_http",
    "check_settings",
    "check_signing_keys",
    "check_undo",
    "check_upgraded_rows",
]
