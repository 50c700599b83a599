"""The assignation admin (list, timeline, revert with preview) and the history columns."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import koherent
from koherent.admin.core import TIMELINE_PAGE_SIZE
from koherent.models import Assignation
from tests.undo.scenario import Scenario, snapshot
from tests.undoapp.models import Invoice, Line

pytestmark = pytest.mark.django_db


def _detail(assignation_id: str) -> str:
    return reverse("admin:koherent_assignation_change", args=[assignation_id])


def _revert(assignation_id: str) -> str:
    return reverse("admin:koherent_assignation_revert", args=[assignation_id])


CHANGELIST = "/admin/koherent/assignation/"

#: The history rows of the scenario's assignation (tests/undo/conftest.py), counted from what
#: it does: the kept invoice saved and its labels changed twice (3 invoice updates), a line
#: updated, another deleted, the removed invoice deleted with its line (2 deletes), an invoice
#: created with two lines and then a label (3 creations, 1 invoice update).
SCENARIO_ROWS = {"undoapp.Invoice": 6, "undoapp.Line": 5}
SCENARIO_KINDS = [
    *("UPDATE", "UPDATE", "UPDATE"),  # the kept invoice: fields, label removed, label added
    *("UPDATE", "DELETE"),  # its two lines
    *("DELETE", "DELETE"),  # the removed invoice's line, then the invoice (the cascade)
    *("CREATE", "CREATE", "CREATE", "UPDATE"),  # the new invoice, its lines, its label
]


def test_changelist_lists_assignations_with_change_counts(
    admin_client: Client, scenario: Scenario
) -> None:
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    rows = {a.pk: a.koherent_change_count for a in response.context["cl"].result_list}
    assert rows[scenario.assignation_id] == sum(SCENARIO_ROWS.values()) == 11
    assert "shop" in response.content.decode()


def test_changelist_costs_one_count_query_for_the_page(admin_client: Client) -> None:
    def queries_for(records: int) -> int:
        for n in range(records):
            with koherent.assignation(app="load"):
                Invoice.objects.create(number=f"q{records}-{n}")
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(queries)

    assert queries_for(2) == queries_for(8)


def test_changelist_filters_and_search_by_id(admin_client: Client, scenario: Scenario) -> None:
    result = koherent.revert_assignation(scenario.assignation_id)
    response = admin_client.get(CHANGELIST, {"origin": "revert"})
    assert [a.pk for a in response.context["cl"].result_list] == [result.revert_assignation_id]
    response = admin_client.get(CHANGELIST, {"q": scenario.assignation_id})
    found = {a.pk for a in response.context["cl"].result_list}
    assert found == {scenario.assignation_id, result.revert_assignation_id}  # it and its child
    response = admin_client.get(CHANGELIST, {"q": "no-such-id"})
    assert list(response.context["cl"].result_list) == []


def test_assignations_are_read_only(admin_client: Client, scenario: Scenario) -> None:
    assert admin_client.get(CHANGELIST + "add/").status_code == 403
    delete = reverse("admin:koherent_assignation_delete", args=[scenario.assignation_id])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Assignation.objects.filter(pk=scenario.assignation_id).exists()


def test_detail_shows_the_timeline_with_field_diffs(
    admin_client: Client, scenario: Scenario
) -> None:
    response = admin_client.get(_detail(scenario.assignation_id))
    assert response.status_code == 200
    page = response.content.decode()
    timeline = response.context["timeline"]
    assert [item["entry"].kind.value for item in timeline] == SCENARIO_KINDS
    assert dict(response.context["counts"]) == SCENARIO_ROWS
    first = timeline[0]
    assert [(c.field, c.old, c.new) for c in first["changes"]] == [
        ("status", "draft", "sent"),
        ("total", 10, 11),
    ]
    assert "<strong>total</strong>: <del>10</del> &rarr; <ins>11</ins>" in page
    assert f"/admin/undoapp/invoice/{scenario.kept.pk}/history/" in page
    assert _revert(scenario.assignation_id) in page


def test_detail_pages_through_long_timelines(admin_client: Client) -> None:
    with koherent.assignation() as ctx:
        invoice = Invoice.objects.create(number="long")
        for n in range(TIMELINE_PAGE_SIZE + 5):
            Line.objects.create(invoice=invoice, position=n, product="p")
    first = admin_client.get(_detail(ctx.assignation_id or ""))
    assert len(first.context["timeline"]) == TIMELINE_PAGE_SIZE
    assert first.context["next_url"]
    second = admin_client.get(_detail(ctx.assignation_id or "") + first.context["next_url"])
    assert len(second.context["timeline"]) == 6
    assert second.context["next_url"] is None
    broken = admin_client.get(_detail(ctx.assignation_id or ""), {"after": "garbage"})
    assert len(broken.context["timeline"]) == TIMELINE_PAGE_SIZE  # back to the first page


def test_unknown_assignation_is_a_404(admin_client: Client) -> None:
    assert admin_client.get(_detail("nope")).status_code == 404
    assert admin_client.get(_revert("nope")).status_code == 404


def test_an_assignation_without_a_record_shows_its_timeline(
    admin_client: Client, settings: Any
) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "RECORD_ASSIGNATIONS": False}
    with koherent.assignation(app="raw") as ctx:
        Invoice.objects.create(number="unrecorded")
    assert not Assignation.objects.filter(pk=ctx.assignation_id).exists()
    response = admin_client.get(_detail(ctx.assignation_id or ""))
    assert response.status_code == 200
    assert (response.context["record"].origin, response.context["record"].app) == (
        "unknown",
        "raw",
    )
    assert [item["entry"].model_label for item in response.context["timeline"]] == [
        "undoapp.Invoice"
    ]


def test_revert_preview_then_confirmation(admin_client: Client, scenario: Scenario) -> None:
    with CaptureQueriesContext(connection) as queries:
        preview = admin_client.get(_revert(scenario.assignation_id))
    assert preview.status_code == 200
    assert not [
        q for q in queries.captured_queries if "undoapp" in q["sql"] and "SELECT" not in q["sql"]
    ]
    page = preview.content.decode()
    assert "3 to delete, 2 to restore, 3 to re-create" in page
    assert f"undoapp.Invoice {scenario.kept.pk}: status, total, labels" in page
    assert 'id="koherent-force"' not in page  # no conflict, nothing to force
    assert snapshot() == scenario.after

    response = admin_client.post(_revert(scenario.assignation_id))
    assert response.status_code == 302
    assert snapshot() == scenario.before
    revert = Assignation.objects.get(origin="revert", parent_id=scenario.assignation_id)
    assert response["Location"] == _detail(revert.pk)
    followed = admin_client.get(response["Location"])
    assert "Reverted: 3 deleted, 2 restored, 3 re-created" in followed.content.decode()
    # The original's page now names its revert.
    assert revert.pk in admin_client.get(_detail(scenario.assignation_id)).content.decode()


def test_revert_with_conflicts_needs_force(admin_client: Client, scenario: Scenario) -> None:
    with koherent.assignation(app="later") as later:
        Invoice.objects.filter(pk=scenario.kept.pk).get().save()
    preview = admin_client.get(_revert(scenario.assignation_id)).content.decode()
    assert "was changed later by" in preview
    assert later.assignation_id is not None
    assert later.assignation_id in preview
    assert 'id="koherent-force"' in preview
    refused = admin_client.post(_revert(scenario.assignation_id))
    assert refused.status_code == 200
    assert "conflict" in refused.context["error"]
    # The message points at the page's checkbox, not at the Python API's argument.
    assert 'Tick "Revert anyway" below and submit again' in refused.context["error"]
    assert "force=True" not in refused.context["error"]
    assert snapshot() == scenario.after
    forced = admin_client.post(_revert(scenario.assignation_id), {"force": "on"})
    assert forced.status_code == 302
    assert snapshot() == scenario.before


def test_revert_needs_the_model_permissions(
    client: Client, django_user_model: Any, scenario: Scenario
) -> None:
    staff = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_assignation"))
    client.force_login(staff)
    assert client.get(_detail(scenario.assignation_id)).status_code == 200
    preview = client.get(_revert(scenario.assignation_id))
    assert preview.status_code == 200
    assert "undoapp.delete_invoice" in preview.context["missing_permissions"]
    assert client.post(_revert(scenario.assignation_id)).status_code == 403
    assert snapshot() == scenario.after
    for codename in ("add", "change", "delete"):
        for model in ("invoice", "line"):
            staff.user_permissions.add(Permission.objects.get(codename=f"{codename}_{model}"))
    staff = django_user_model.objects.get(pk=staff.pk)  # drop the permission cache
    client.force_login(staff)
    assert client.post(_revert(scenario.assignation_id)).status_code == 302
    assert snapshot() == scenario.before


def test_history_page_of_a_tracked_model_links_the_assignation(
    admin_client: Client, scenario: Scenario
) -> None:
    with koherent.context(task_id="task-7"), koherent.assignation(app="worker") as ctx:
        invoice = Invoice.objects.get(pk=scenario.kept.pk)
        invoice.total = 12
        invoice.save()
    url = reverse("admin:undoapp_invoice_history", args=[scenario.kept.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    for column in ("assignation", "app", "task"):
        assert f'<th scope="col">{column}</th>' in page
    assert f'<a href="{_detail(ctx.assignation_id or "")}">{ctx.assignation_id}</a>' in page
    assert f'<a href="{_detail(scenario.assignation_id)}">' in page
    assert "task-7" in page
    assert "worker" in page
