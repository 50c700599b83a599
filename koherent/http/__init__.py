"""Outgoing HTTP calls carry the assignation to the other Koherent services they call.

A call made under an audit context gets the context's assignation id (and, when
``OUTGOING_APP_HEADER`` names a header, its app) as request headers, so the receiving service's
middleware and GraphQL extension put its changes under the same assignation. Only hosts on the
``OUTGOING_HOSTS`` allow-list get them (none by default), so the id never reaches a third party
by accident::

    # settings.py
    KOHERENT = {"OUTGOING_HOSTS": ["inventory.internal", "*.api.internal"]}

    # httpx
    import koherent.http.httpx
    client = koherent.http.httpx.install(httpx.Client())

    # requests
    import koherent.http.requests
    session = koherent.http.requests.install(requests.Session())

Each client has its own module, the only one importing that client: this package and
:mod:`koherent.http.httpx` work without requests installed, and the other way round.
See docs/services.md.
"""

from __future__ import annotations

from koherent.http.hosts import HostAllowList, HostPattern, allow_list, parse_host_pattern
from koherent.http.propagation import Propagation

__all__ = ["HostAllowList", "HostPattern", "Propagation", "allow_list", "parse_host_pattern"]
