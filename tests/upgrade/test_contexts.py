"""KoherentExtension and operation contexts it cannot read: refused, never run unstamped.

A kante context (koherent 0.2's services) is read by shape; the test with the real kante and
authentikate runs in their own environment (``test_upgrade_020.py``, stage 3).
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from tests.graphql.schema import schema
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

CREATE = 'mutation { createOrder(reference: "x") { id } }'


def test_a_request_the_extension_cannot_read_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    result = schema.execute_sync(
        CREATE, context_value={"request": types.SimpleNamespace(token="secret")}
    )
    assert result.errors is not None
    (error,) = result.errors
    assert error.extensions == {"code": "KOHERENT_INVALID_AUDIT_CONTEXT"}
    assert "cannot read the audit context" in error.message
    assert "types.SimpleNamespace" in error.message
    assert not Order.objects.exists()
    assert "refused a GraphQL operation" in caplog.text


def test_without_a_request_the_operation_runs_in_the_callers_context() -> None:
    result = schema.execute_sync(CREATE, context_value={})
    assert result.errors is None
    assert Order.history.get().assignation_id is None


def test_a_kante_shaped_context_is_read(user: Any) -> None:
    universal = types.SimpleNamespace(_user=user, _client=None, _extensions={})
    universal.set_extension = lambda name, value: None
    context = types.SimpleNamespace(
        request=universal, headers={"x-assignation-id": "kante-shaped"}, type="http"
    )
    result = schema.execute_sync(CREATE, context_value=context)
    assert result.errors is None, result.errors
    row = Order.history.get()
    assert (row.assignation_id, row.user_pk, row.app) == ("kante-shaped", str(user.pk), "tests")
