"""Which hosts outgoing calls may tell the assignation to: the ``OUTGOING_HOSTS`` allow-list.

An entry is one of

``api.example.com``
    exactly that host name (any port);
``api.example.com:8443``
    that host name on that port only (``:443`` also matches ``https://api.example.com/``, whose
    port is implicit);
``*.example.com``
    any subdomain of ``example.com``, at any depth (``a.example.com``, ``a.b.example.com``), but
    not ``example.com`` itself, nor ``evil-example.com`` or ``example.com.evil.net``: list
    ``example.com`` as well to include it. The wildcard is the whole first label, and at least
    two labels must follow it (``*.com`` is refused);
``10.0.0.7``, ``[fd00::7]:8000``
    an IP address (IPv6 in brackets when a port follows), compared as addresses.

Names are compared case-insensitively, without a trailing dot, in their ASCII (IDNA) form.
Nothing else matches: no prefixes, no suffixes, no patterns elsewhere in the name. The host
compared is the one the HTTP client itself parsed from the URL and connects to, so URLs such as
``http://api.example.com@evil.net/`` are judged by ``evil.net``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from koherent._logging import get_logger

logger = get_logger("koherent.http")

#: Ports implied by a URL's scheme when it names none.
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_WILDCARD = "*."


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One parsed allow-list entry."""

    #: The host name or address, normalised; for a wildcard, the domain after ``*.``.
    host: str
    #: The only port it matches, or ``None`` for any.
    port: int | None = None
    #: Whether it matches the subdomains of :attr:`host` (and not :attr:`host` itself).
    subdomains: bool = False

    def matches(self, host: str, port: int | None) -> bool:
        """Whether a normalised host and effective port are allowed by this entry."""
        if self.port is not None and port != self.port:
            return False
        if self.subdomains:
            return host.endswith("." + self.host)
        return host == self.host


def _ascii_name(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{name!r} is not a valid host name: {exc}") from None


def normalize_host(host: str) -> str:
    """The form hosts are compared in: lower case, no trailing dot, ASCII; addresses compressed.

    Raises ``ValueError`` for something that is neither a host name nor an IP address.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        pass
    text = text.rstrip(".").lower()
    if not text.isascii():
        text = _ascii_name(text)
    labels = text.split(".")
    if not text or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a host name or an IP address")
    return text


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [IPv6] or [IPv6]:port
        close = entry.find("]")
        if close < 0:
            raise ValueError("an opening '[' without its ']'")
        host, rest = entry[: close + 1], entry[close + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError("only ':port' may follow ']'")
        port_text = rest[1:]
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
    else:
        return entry, None  # no port, or a bare IPv6 address
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{port_text!r} is not a port number")
    return host, int(port_text)


def parse_host_pattern(entry: object) -> HostPattern:
    """Parse one ``OUTGOING_HOSTS`` entry; ``ValueError`` says what is wrong with it."""
    try:
        if not isinstance(entry, str):
            raise ValueError("it is not a string")
        text = entry.strip()
        if not text:
            raise ValueError("it is empty")
        if "/" in text or "@" in text or any(c.isspace() for c in text):
            raise ValueError("give a host name, with an optional :port, not a URL")
        host, port = _split_port(text)
        if host == "*":
            raise ValueError("'*' would send the assignation to every host: list the hosts")
        subdomains = host.startswith(_WILDCARD)
        if subdomains:
            host = host[len(_WILDCARD) :]
        if "*" in host:
            raise ValueError("'*' is only allowed as the whole first label, as in *.example.com")
        normalized = normalize_host(host)
        if subdomains:
            if ":" in normalized or normalized.replace(".", "").isdigit():
                raise ValueError("an IP address has no subdomains")
            if normalized.count(".") < 1:
                raise ValueError(
                    "a wildcard needs at least two labels after '*.' (*.example.com, not *.com)"
                )
    except ValueError as exc:
        raise ValueError(f"OUTGOING_HOSTS entry {entry!r}: {exc}") from None
    return HostPattern(host=normalized, port=port, subdomains=subdomains)


@dataclass(frozen=True, slots=True)
class HostAllowList:
    """A parsed allow-list. Empty allows nothing."""

    patterns: tuple[HostPattern, ...] = ()

    def allows(self, scheme: str, host: str | None, port: int | None) -> bool:
        """Whether a call to ``scheme://host:port`` may carry the assignation."""
        if not self.patterns or not host:
            return False
        try:
            name = normalize_host(host)
        except ValueError:
            return False
        effective_port = port if port is not None else DEFAULT_PORTS.get(scheme.lower())
        return any(pattern.matches(name, effective_port) for pattern in self.patterns)


def allow_list(entries: Iterable[object]) -> HostAllowList:
    """The allow-list made of ``entries``; invalid entries are left out with a warning.

    ``manage.py check`` reports them as ``koherent.E050``.
    """
    entries = tuple(entries)
    try:
        return _allow_list(entries)
    except TypeError:  # an unhashable entry: parse without the cache
        return _allow_list.__wrapped__(entries)


@functools.lru_cache(maxsize=32)
def _allow_list(entries: tuple[object, ...]) -> HostAllowList:
    patterns = []
    for entry in entries:
        try:
            patterns.append(parse_host_pattern(entry))
        except ValueError as exc:
            logger.warning("koherent: %s; the entry is ignored", exc)
    return HostAllowList(tuple(patterns))
