"""Fixtures of the query and revert tests (a plugin of the root conftest: tests import the
helpers from :mod:`tests.undo.scenario`, never the fixtures)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.undo.scenario import Scenario, make_scenario


@pytest.fixture
def scenario(user: Any) -> Scenario:
    """Two invoices with lines and labels, then an assignation that changes all three kinds of
    row (see :func:`tests.undo.scenario.make_scenario`)."""
    return make_scenario(user)
