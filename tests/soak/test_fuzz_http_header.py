"""Fuzzing the assignation header through the real middleware: whatever a client sends in
``X-Assignation-ID``, the answer is the view's (valid id, stamped exactly as sent, whitespace
aside) or a 400 with a log line (anything else), never a 500, and a refused request writes
nothing."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import RequestFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import koherent
from koherent._validation import MAX_ASSIGNATION_ID_LENGTH
from koherent.middleware import KoherentMiddleware
from tests.soak import support
from tests.testapp.models import Order

pytestmark = [support.soak, pytest.mark.django_db]

EXAMPLES = support.size(10_000, 200)
#: What a valid id is, written down independently of koherent._validation's pattern (its
#: length limit is the one shared constant).
VALID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_ASSIGNATION_ID_LENGTH - 1}}}", re.ASCII)
ID_CHARACTERS = "abcXYZ019._:-"


def view(request: HttpRequest) -> HttpResponse:
    order = Order.objects.create(reference="fuzz")
    return JsonResponse({"id": order.pk, "assignation_id": koherent.get_current_assignation_id()})


valid_ids = st.from_regex(VALID, fullmatch=True)
near_ids = st.text(alphabet=ID_CHARACTERS + " \t/|@é\x00\n", min_size=0, max_size=120)
padded = st.tuples(st.sampled_from(["", " ", "\t", "  "]), valid_ids, st.sampled_from(["", " "]))
header_values = st.one_of(
    valid_ids,
    padded.map("".join),
    near_ids,
    st.text(max_size=300),
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
    st.integers(MAX_ASSIGNATION_ID_LENGTH - 50, MAX_ASSIGNATION_ID_LENGTH + 300).map(
        lambda n: "a" * n
    ),
    st.from_regex(VALID, fullmatch=True).map(lambda s: s + "\x00"),
)


def test_fuzz_assignation_header() -> None:
    middleware = KoherentMiddleware(view)
    factory = RequestFactory()
    outcomes: Counter[str] = Counter()
    handler = support.LogLines(logging.WARNING)
    logger = logging.getLogger("koherent")
    logger.addHandler(handler)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(value=header_values)
    def one(value: str) -> None:
        request = factory.post("/orders/", headers={"X-Assignation-ID": value})
        request.user = AnonymousUser()
        before = (Order.objects.count(), Order.history.count())
        handler.lines.clear()
        response = middleware(request)
        stripped = value.strip()
        if VALID.fullmatch(stripped):
            assert response.status_code == 200, (value, response.content)
            body = json.loads(response.content)
            assert body["assignation_id"] == stripped
            assert response["X-Assignation-ID"] == stripped
            row = Order.history.get(id=body["id"])
            assert row.assignation_id == stripped
            outcomes["accepted"] += 1
        else:
            assert response.status_code == 400, (value, response.status_code)
            assert json.loads(response.content)["error"] == "invalid_audit_context"
            assert (Order.objects.count(), Order.history.count()) == before
            [line] = handler.lines
            assert line.startswith("koherent: refused POST /orders/: Invalid X-Assignation-ID")
            outcomes["refused-400"] += 1
        assert koherent.current().is_empty

    try:
        one()
    finally:
        logger.removeHandler(handler)
    support.report(
        "fuzz-http-assignation-header",
        examples=sum(outcomes.values()),
        accepted=outcomes["accepted"],
        refused_400=outcomes["refused-400"],
        server_errors=0,
    )
    assert outcomes["accepted"]
    assert outcomes["refused-400"]
