"""What an outgoing call carries: the current assignation id (and app) for allowed hosts only.

Shared by the client integrations (:mod:`koherent.http.httpx`, :mod:`koherent.http.requests`);
imports no HTTP client.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from koherent._config import get_setting
from koherent.access import leaving_context, may_leave
from koherent.context import UNSET, AuditContext, peek
from koherent.http.hosts import HostAllowList, allow_list


class Overrides(TypedDict, total=False):
    """What the client integrations' ``install()`` and hooks take to override the settings."""

    hosts: Sequence[str] | None
    assignation_header: str | None
    app_header: Any


@dataclass(frozen=True, slots=True)
class Propagation:
    """Which hosts get the assignation, under which header names.

    Every field left at its default is read from the settings at each call (``OUTGOING_HOSTS``,
    ``OUTGOING_ASSIGNATION_HEADER``, ``OUTGOING_APP_HEADER``), so ``override_settings`` applies.
    Given here, a value is used as it is: ``hosts=()`` sends to no host, ``app_header=None``
    never sends the app.
    """

    #: The allow-list (see :mod:`koherent.http.hosts`).
    hosts: Sequence[str] | None = None
    #: Header carrying the assignation id.
    assignation_header: str | None = None
    #: Header carrying the app (``None``: the app is not sent).
    app_header: Any = UNSET

    def allow_list(self) -> HostAllowList:
        """The parsed allow-list in force."""
        hosts = self.hosts if self.hosts is not None else get_setting("OUTGOING_HOSTS")
        return allow_list(hosts or ())

    def header_values(self, ctx: AuditContext | None = UNSET) -> dict[str, str]:
        """The headers ``ctx`` (default: the current context, if it may leave the process,
        :func:`koherent.access.leaving_context`) gives an allowed call; empty without one."""
        if ctx is UNSET:
            ctx = leaving_context("HTTP request")
        if ctx is None or (ctx.assignation_id is None and ctx.app is None):
            return {}
        values: dict[str, str] = {}
        if ctx.assignation_id is not None:
            name = self.assignation_header or get_setting("OUTGOING_ASSIGNATION_HEADER")
            values[name or get_setting("ASSIGNATION_HEADER")] = ctx.assignation_id
        if ctx.app is not None:
            app_header = (
                get_setting("OUTGOING_APP_HEADER") if self.app_header is UNSET else self.app_header
            )
            if app_header:
                values[app_header] = ctx.app
        return values

    def apply(
        self,
        headers: MutableMapping[str, str],
        scheme: str,
        host: str | None,
        port: int | None,
    ) -> None:
        """Set, or take out, the context's headers of a call to ``scheme://host:port``.

        On an allowed host the headers are set from the current context, replacing any value
        there, when the context may leave the process (:func:`koherent.access.may_leave`:
        not when the request it belongs to may not join its assignation). On any other host,
        and on an allowed host when the context is held back, a header holding the very value the
        context would send is removed: an earlier hop (a redirect from an allowed host) put it
        there. Without a context nothing is touched.
        """
        ctx = peek()
        if ctx is None or (ctx.assignation_id is None and ctx.app is None):
            return
        if self.allow_list().allows(scheme, host, port) and may_leave(
            ctx, "HTTP request to", f"{scheme}://{host}" + ("" if port is None else f":{port}")
        ):
            for name, value in self.header_values(ctx).items():
                headers[name] = value
            return
        # Off the allow-list, or held back: nothing of the context goes.
        for name, value in self.header_values(ctx).items():
            if headers.get(name) == value:
                del headers[name]


#: The settings-driven propagation the integrations use by default.
DEFAULT = Propagation()


def propagation(**overrides: Unpack[Overrides]) -> Propagation:
    """The propagation with these overrides: :data:`DEFAULT` when none is given."""
    given = {name: value for name, value in overrides.items() if value is not _NOT_GIVEN[name]}
    return Propagation(**given) if given else DEFAULT  # type: ignore[arg-type]


#: The value of each override meaning "not given" (the default of the integrations' keywords).
_NOT_GIVEN: dict[str, Any] = {"hosts": None, "assignation_header": None, "app_header": UNSET}
