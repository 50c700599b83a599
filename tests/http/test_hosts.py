"""The OUTGOING_HOSTS allow-list: exact matches only, wildcards for subdomains only."""

from __future__ import annotations

import logging

import httpx
import pytest

from koherent.http.hosts import HostPattern, allow_list, parse_host_pattern


def allows(entries: list[str], url: str) -> bool:
    """Whether a call to ``url`` (parsed as httpx parses it) is allowed by ``entries``."""
    parsed = httpx.URL(url)
    return allow_list(entries).allows(parsed.scheme, parsed.raw_host.decode(), parsed.port)


@pytest.mark.parametrize(
    ("entries", "url", "expected"),
    [
        (["api.example.com"], "https://api.example.com/x", True),
        (["api.example.com"], "http://API.Example.COM./x", True),
        (["API.example.com."], "https://api.example.com:8443/", True),
        (["api.example.com"], "https://example.com/", False),
        (["api.example.com"], "https://x.api.example.com/", False),
        (["example.com"], "https://evil-example.com/", False),
        (["example.com"], "https://example.com.evil.net/", False),
        (["example.com"], "https://notexample.com/", False),
        (["example.com"], "https://example.co/", False),
        (["example.com"], "https://example.com@evil.net/", False),
        (["evil.net"], "https://example.com@evil.net/", True),
        (["*.example.com"], "https://a.example.com/", True),
        (["*.example.com"], "https://a.b.example.com/", True),
        (["*.example.com"], "https://example.com/", False),
        (["*.example.com"], "https://evil-example.com/", False),
        (["*.example.com"], "https://a.example.com.evil.net/", False),
        (["*.example.com"], "https://aexample.com/", False),
        (["api.example.com:8443"], "https://api.example.com:8443/", True),
        (["api.example.com:8443"], "https://api.example.com/", False),
        (["api.example.com:443"], "https://api.example.com/", True),
        (["api.example.com:443"], "http://api.example.com/", False),
        (["api.example.com:80"], "http://api.example.com/", True),
        (["*.example.com:8443"], "https://a.example.com:8443/", True),
        (["*.example.com:8443"], "https://a.example.com/", False),
        (["10.0.0.7"], "http://10.0.0.7:8000/", True),
        (["10.0.0.7"], "http://10.0.0.70/", False),
        (["[fd00::7]:8000"], "http://[fd00:0::7]:8000/", True),
        (["fd00::7"], "http://[fd00::7]:9000/", True),
        (["[fd00::7]:8000"], "http://[fd00::7]:9000/", False),
        (["bücher.example"], "https://xn--bcher-kva.example/", True),
        (["xn--bcher-kva.example"], "https://bücher.example/", True),
        (["service_b"], "http://service_b:8000/", True),
        ([], "https://api.example.com/", False),
    ],
)
def test_matching(entries: list[str], url: str, expected: bool) -> None:
    assert allows(entries, url) is expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("https://api.example.com", "not a URL"),
        ("api.example.com/path", "not a URL"),
        ("user@api.example.com", "not a URL"),
        ("*", "every host"),
        ("*:443", "every host"),
        ("*.com", "at least two labels"),
        ("*example.com", "whole first label"),
        ("a.*.example.com", "whole first label"),
        ("api.*", "whole first label"),
        ("*.10.0.0.1", "no subdomains"),
        ("api.example.com:", "not a port"),
        ("api.example.com:0", "not a port"),
        ("api.example.com:65536", "not a port"),
        ("api.example.com:http", "not a port"),
        ("[fd00::7", "without its ']'"),
        ("[fd00::7]x", "only ':port'"),
        ("exa mple.com", "not a URL"),
        ("-bad.example.com", "not a host name"),
        ("a..example.com", "not a host name"),
        (42, "not a string"),
    ],
)
def test_invalid_entries_say_why(entry: object, message: str) -> None:
    with pytest.raises(ValueError, match="OUTGOING_HOSTS entry") as info:
        parse_host_pattern(entry)
    assert message in str(info.value)


def test_parsed_forms() -> None:
    assert parse_host_pattern("*.Example.COM:8443") == HostPattern("example.com", 8443, True)
    assert parse_host_pattern("[::1]") == HostPattern("::1")


def test_invalid_entries_are_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="koherent.http"):
        parsed = allow_list(["*", "ok.example.com", "also-ok.example.com:81"])
    assert [p.host for p in parsed.patterns] == ["ok.example.com", "also-ok.example.com"]
    assert "OUTGOING_HOSTS entry '*'" in caplog.text
    assert "the entry is ignored" in caplog.text


def test_unhashable_entries_do_not_break_the_cache() -> None:
    assert allow_list([["a"], "b.example"]).patterns == (HostPattern("b.example"),)
