"""A CR or LF in a GraphQL operation's assignation cannot start a new Koherent log line."""

from __future__ import annotations

import logging

import pytest

from tests.graphql.client import GraphQLClient

pytestmark = pytest.mark.django_db

FORGED = "op\nkoherent: reverted assignation fake (1 deleted)\r\n"
CREATE = "mutation($r: String!) { createOrder(reference: $r) { id } }"


def test_refused_operation_is_logged_on_one_line(
    gql_client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The operation's ``extensions`` name the assignation (a header with CR/LF never reaches
    Django; a malformed header is the middleware's, tests/test_log_injection.py)."""
    with caplog.at_level(logging.WARNING, "koherent"):
        result = gql_client.post(
            CREATE, {"r": "no"}, extensions={"koherent": {"assignationId": FORGED}}
        )
    assert result.data is None
    lines = [r.getMessage() for r in caplog.records if "refused a GraphQL operation" in r.message]
    assert lines
    for line in lines:
        assert "\n" not in line
        assert "\r" not in line
        assert "koherent: reverted assignation fake" in line  # kept, escaped, on the same line
