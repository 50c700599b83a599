"""A project that routes a tracked app to a second database: every read follows the router.

``tests.multidbapp`` (a ticket and its notes) is sent, with its history, to the ``other``
database by ``tests.multidbapp.router``; Koherent's ``koherent_assignation`` table stays on
``default``. The query, the admin, GraphQL, the management commands and the revert must find
the history on ``other`` and the assignation records on ``default``.

Both databases hold every table (the test databases are migrated without the router), so a
read that goes to the wrong database finds an empty table rather than an error: the tests see
the difference in what is returned, and check that nothing landed on the wrong database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

import koherent
from koherent.exceptions import AssignationSpansDatabases
from koherent.models import Assignation
from koherent.routing import history_database, history_databases, record_database
from tests.multidbapp.models import Note, Ticket
from tests.undoapp.models import Invoice

pytestmark = pytest.mark.django_db(databases=["default", "other"])

ROUTER = "tests.multidbapp.router.OtherDatabaseRouter"


@pytest.fixture(autouse=True)
def routed(settings: Any) -> None:
    settings.DATABASE_ROUTERS = [ROUTER]
    settings.ROOT_URLCONF = "tests.multidbapp.urls"


@dataclass
class Scenario:
    kept: Ticket  # updated by the assignation (status open -> closed)
    created: Ticket  # created by the assignation, with one note
    assignation_id: str


@pytest.fixture
def scenario(admin_user: Any) -> Scenario:
    with koherent.assignation(app="setup"):
        kept = Ticket.objects.create(title="kept")
    with koherent.assignation(user=admin_user, app="desk") as ctx:
        kept.status = "closed"
        kept.save()
        created = Ticket.objects.create(title="new")
        Note.objects.create(ticket=created, text="hello")
    return Scenario(kept=kept, created=created, assignation_id=ctx.assignation_id or "")


def state() -> list[tuple[str, str]]:
    """The tickets on ``other``, as (title, status)."""
    return sorted(Ticket.objects.using("other").values_list("title", "status"))


BEFORE = [("kept", "open")]
AFTER = [("kept", "closed"), ("new", "open")]


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- the writes, and where the rules put things --------------------------------------------


def test_history_goes_to_the_routed_database_and_the_record_to_default(
    scenario: Scenario,
) -> None:
    assert state() == AFTER
    assert Ticket.objects.using("default").count() == 0
    assert Ticket.history.using("other").filter(assignation_id=scenario.assignation_id).count()
    assert not Ticket.history.using("default").exists()
    # The record: on default (the router keeps ``koherent`` off ``other``), never on other.
    record = Assignation.objects.using("default").get(pk=scenario.assignation_id)
    assert (record.app, record.origin) == ("desk", "manual")
    assert not Assignation.objects.using("other").filter(pk=scenario.assignation_id).exists()


def test_the_routing_rules(scenario: Scenario, settings: Any) -> None:
    assert history_databases() == ("default", "other")
    assert history_database(scenario.assignation_id) == "other"
    assert history_database(scenario.assignation_id, write=True) == "other"
    assert record_database("other") == "default"
    assert record_database("default") == "default"
    assert record_database() == "default"
    # Without the router, a single database: found without a query.
    settings.DATABASE_ROUTERS = []
    assert history_databases() == ("default",)
    assert record_database("other") == "other"  # Koherent's tables may live there


def test_a_project_on_one_database_resolves_without_a_query(
    settings: Any, django_assert_num_queries: Any
) -> None:
    settings.DATABASE_ROUTERS = []
    with django_assert_num_queries(0):
        history = koherent.history_for_assignation("no-such-assignation")
    assert history.using == "default"


# -- the query -------------------------------------------------------------------------------


def test_history_for_assignation_reads_the_routed_database(scenario: Scenario) -> None:
    history = koherent.history_for_assignation(scenario.assignation_id)
    assert history.using == "other"
    entries = list(history)
    assert [(e.model_label, e.kind.value) for e in entries] == [
        ("multidbapp.Ticket", "UPDATE"),
        ("multidbapp.Ticket", "CREATE"),
        ("multidbapp.Note", "CREATE"),
    ]
    assert [e.app for e in entries] == ["desk", "desk", "desk"]
    assert history.counts() == {"multidbapp.Note": 1, "multidbapp.Ticket": 2}
    assert history.count() == 3
    assert history.exists()
    first = history.page(first=2)
    assert len(first.rows) == 2
    assert first.has_next
    second = history.page(first=2, after=first.end_cursor)
    assert [e.model_label for e in second.entries] == ["multidbapp.Note"]
    assert not second.has_next


def test_changes_and_entries_load_from_the_routed_database(scenario: Scenario) -> None:
    entries = list(koherent.history_for_assignation(scenario.assignation_id))
    changes = koherent.effective_changes(entries)
    update = {(c.field, c.old, c.new) for c in changes[0]}
    assert ("status", "open", "closed") in update
    loaded = koherent.load_entries([e.key for e in entries] + [("multidbapp.Ticket", 10**9)])
    assert [e.key if e else None for e in loaded] == [e.key for e in entries] + [None]


def test_list_assignations_and_counts(scenario: Scenario) -> None:
    summaries = koherent.list_assignations(app="desk")
    assert [(s.assignation.pk, s.change_count) for s in summaries] == [
        (scenario.assignation_id, 3)
    ]
    assert koherent.change_counts([scenario.assignation_id, "other-one"]) == {
        scenario.assignation_id: 3,
        "other-one": 0,
    }
    # An explicit database is read alone.
    assert koherent.change_counts([scenario.assignation_id], using="default") == {
        scenario.assignation_id: 0
    }


# -- revert ----------------------------------------------------------------------------------


def test_revert_assignation_on_the_routed_database(scenario: Scenario) -> None:
    plan = koherent.revert_assignation(scenario.assignation_id, dry_run=True)
    assert plan.change_count == 3
    result = koherent.revert_assignation(scenario.assignation_id)
    assert (result.deleted, result.restored, result.recreated) == (2, 1, 0)
    assert state() == BEFORE
    assert not Note.objects.using("other").exists()
    revert_record = Assignation.objects.using("default").get(pk=result.revert_assignation_id)
    assert (revert_record.origin, revert_record.parent_id) == ("revert", scenario.assignation_id)
    assert not Assignation.objects.using("other").exists()
    # The revert's own history is on other, and reverting again is refused.
    assert koherent.history_for_assignation(result.revert_assignation_id).count() == 3
    with pytest.raises(koherent.AlreadyReverted):
        koherent.revert_assignation(scenario.assignation_id)


def test_a_refused_revert_leaves_no_revert_record(scenario: Scenario) -> None:
    with koherent.assignation(app="later"):
        scenario.kept.title = "renamed"
        scenario.kept.save()
    with pytest.raises(koherent.RevertConflict):
        koherent.revert_assignation(scenario.assignation_id)
    assert not Assignation.objects.using("default").filter(origin="revert").exists()
    assert sorted(Ticket.objects.using("other").values_list("title", flat=True)) == [
        "new",
        "renamed",
    ]


def test_a_revert_the_database_refuses_leaves_no_revert_record() -> None:
    with koherent.assignation(app="setup"):
        gone = Ticket.objects.create(title="gone")
    with koherent.assignation(app="cleanup") as ctx:
        gone.delete()
    Ticket.objects.create(title="gone")  # the unique title is taken since
    with pytest.raises(koherent.RevertError) as raised:
        koherent.revert_assignation(ctx.assignation_id or "")
    assert not isinstance(raised.value, koherent.RevertConflict)
    # The revert's record (on default) rolled back with its writes (on other).
    assert not Assignation.objects.using("default").filter(origin="revert").exists()
    assert Ticket.objects.using("other").filter(title="gone").count() == 1


def test_an_assignation_on_two_databases_needs_using(scenario: Scenario) -> None:
    with koherent.assignation(app="both") as ctx:
        Invoice.objects.create(number="I-1")
        Ticket.objects.create(title="t")
    both = ctx.assignation_id or ""
    with pytest.raises(AssignationSpansDatabases) as raised:
        koherent.history_for_assignation(both)
    assert raised.value.databases == ("default", "other")
    assert "pass using=" in str(raised.value)
    with pytest.raises(AssignationSpansDatabases):
        koherent.revert_assignation(both)
    assert [e.model_label for e in koherent.history_for_assignation(both, using="other")] == [
        "multidbapp.Ticket"
    ]
    assert koherent.change_counts([both]) == {both: 2}
    with pytest.raises(CommandError, match="several databases"):
        call_command("koherent_history", both, stdout=StringIO())


# -- the admin -------------------------------------------------------------------------------


def test_admin_changelist_timeline_and_revert(scenario: Scenario, admin_user: Any) -> None:
    client = client_for(admin_user)
    listing = client.get("/admin/koherent/assignation/", {"app": "desk"})
    assert listing.status_code == 200
    counts = {a.pk: a.koherent_change_count for a in listing.context["cl"].result_list}
    assert counts == {scenario.assignation_id: 3}

    detail = reverse("admin:koherent_assignation_change", args=[scenario.assignation_id])
    timeline = client.get(detail)
    assert timeline.status_code == 200
    assert [row["entry"].model_label for row in timeline.context["timeline"]] == [
        "multidbapp.Ticket",
        "multidbapp.Ticket",
        "multidbapp.Note",
    ]
    assert dict(timeline.context["counts"]) == {"multidbapp.Note": 1, "multidbapp.Ticket": 2}

    revert = reverse("admin:koherent_assignation_revert", args=[scenario.assignation_id])
    preview = client.get(revert)
    assert preview.status_code == 200
    assert preview.context["plan"].change_count == 3
    done = client.post(revert)
    assert done.status_code == 302
    assert state() == BEFORE
    assert (
        Assignation.objects.using("default")
        .filter(origin="revert", parent_id=scenario.assignation_id)
        .exists()
    )


def test_admin_on_an_assignation_on_two_databases(admin_user: Any) -> None:
    with koherent.assignation(app="both") as ctx:
        Invoice.objects.create(number="I-2")
        Ticket.objects.create(title="t2")
    both = ctx.assignation_id or ""
    client = client_for(admin_user)
    timeline = client.get(reverse("admin:koherent_assignation_change", args=[both]))
    assert timeline.status_code == 200
    assert [row["entry"].model_label for row in timeline.context["timeline"]] == [
        "undoapp.Invoice"
    ]
    shown = [str(m) for m in timeline.context["messages"]]
    assert any("several databases" in m and "'default' only" in m for m in shown), shown
    revert = client.get(reverse("admin:koherent_assignation_revert", args=[both]), follow=True)
    assert revert.redirect_chain[0][1] == 302
    assert any("koherent_revert --database" in str(m) for m in revert.context["messages"])
    assert Invoice.objects.filter(number="I-2").exists()


# -- GraphQL ---------------------------------------------------------------------------------

ASSIGNATION = """query($id: ID!) {
  assignation(id: $id) {
    id app changeCount
    models { modelLabel count }
    changes(first: 10) { entries { kind modelLabel changes { field oldValue newValue } } }
  }
}"""

TICKETS = "{ tickets { title history { kind assignationId } } }"

REVERT = """mutation($id: ID!) {
  revertAssignation(id: $id) {
    __typename
    ... on RevertResult { deleted restored recreated revertAssignationId }
  }
}"""


def graphql(client: Client, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = client.post(
        "/graphql/",
        json.dumps({"query": query, "variables": variables or {}}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def test_graphql_assignation_object_history_and_revert(
    scenario: Scenario, admin_user: Any
) -> None:
    client = client_for(admin_user)
    data = graphql(client, ASSIGNATION, {"id": scenario.assignation_id})["assignation"]
    assert (data["id"], data["app"], data["changeCount"]) == (scenario.assignation_id, "desk", 3)
    assert sorted((m["modelLabel"], m["count"]) for m in data["models"]) == [
        ("multidbapp.Note", 1),
        ("multidbapp.Ticket", 2),
    ]
    entries = data["changes"]["entries"]
    assert [(e["kind"], e["modelLabel"]) for e in entries] == [
        ("UPDATE", "multidbapp.Ticket"),
        ("CREATE", "multidbapp.Ticket"),
        ("CREATE", "multidbapp.Note"),
    ]
    assert {"field": "status", "oldValue": "open", "newValue": "closed"} in entries[0]["changes"]

    tickets = {t["title"]: t["history"] for t in graphql(client, TICKETS)["tickets"]}
    assert [h["kind"] for h in tickets["kept"]] == ["CREATE", "UPDATE"]
    assert tickets["kept"][1]["assignationId"] == scenario.assignation_id

    result = graphql(client, REVERT, {"id": scenario.assignation_id})["revertAssignation"]
    assert result["__typename"] == "RevertResult"
    assert (result["deleted"], result["restored"], result["recreated"]) == (2, 1, 0)
    assert state() == BEFORE
    assert Assignation.objects.using("default").filter(pk=result["revertAssignationId"]).exists()


def test_graphql_revert_of_an_assignation_on_two_databases_is_refused(admin_user: Any) -> None:
    with koherent.assignation(app="both") as ctx:
        Invoice.objects.create(number="I-3")
        Ticket.objects.create(title="t3")
    response = client_for(admin_user).post(
        "/graphql/",
        json.dumps({"query": REVERT, "variables": {"id": ctx.assignation_id}}),
        content_type="application/json",
    )
    (error,) = response.json()["errors"]
    assert error["extensions"] == {
        "code": "KOHERENT_ASSIGNATION_SPANS_DATABASES",
        "databases": ["default", "other"],
    }
    assert "several databases" in error["message"]
    assert Invoice.objects.filter(number="I-3").exists()
    assert Ticket.objects.using("other").filter(title="t3").exists()


# -- the management commands -----------------------------------------------------------------


def test_koherent_history_command(scenario: Scenario) -> None:
    out = StringIO()
    call_command("koherent_history", scenario.assignation_id, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"Assignation {scenario.assignation_id}:")
    assert "app desk" in lines[0]
    assert lines[-1] == "3 change(s)"
    out = StringIO()
    call_command("koherent_history", scenario.assignation_id, "--json", stdout=out)
    document = json.loads(out.getvalue())
    assert document["assignation"]["app"] == "desk"
    assert [c["model"] for c in document["changes"]] == [
        "multidbapp.Ticket",
        "multidbapp.Ticket",
        "multidbapp.Note",
    ]


def test_koherent_revert_command(scenario: Scenario) -> None:
    out = StringIO()
    call_command(
        "koherent_revert", scenario.assignation_id, "--yes", stdout=out, stderr=StringIO()
    )
    assert state() == BEFORE
    assert (
        Assignation.objects.using("default")
        .filter(origin="revert", parent_id=scenario.assignation_id)
        .exists()
    )


# -- the services every front end uses -------------------------------------------------------


def test_the_read_services_follow_the_router(scenario: Scenario) -> None:
    record = koherent.get_assignation(scenario.assignation_id)
    assert record is not None
    assert (record._state.db, record._state.adding, record.app) == ("default", False, "desk")
    counts = {"multidbapp.Note": 1, "multidbapp.Ticket": 2}
    assert koherent.model_counts([scenario.assignation_id]) == {scenario.assignation_id: counts}
    assert koherent.change_counts([scenario.assignation_id]) == {scenario.assignation_id: 3}
    # On a database named, only what is there: nothing of it on default.
    assert koherent.model_counts([scenario.assignation_id], using="default") == {
        scenario.assignation_id: {}
    }
    [kept, created] = koherent.object_histories(
        [("multidbapp.Ticket", scenario.kept.pk), ("multidbapp.Ticket", scenario.created.pk)]
    )
    assert [e.kind.value for e in kept] == ["CREATE", "UPDATE"]
    assert [e.assignation_id for e in created] == [scenario.assignation_id]
    assert {e.row._state.db for e in [*kept, *created]} == {"other"}


@pytest.fixture
def unrecorded(settings: Any) -> str:
    """An assignation written without a record (its history on ``other``)."""
    settings.KOHERENT = {**settings.KOHERENT, "RECORD_ASSIGNATIONS": False}
    with koherent.assignation(app="raw") as ctx:
        Ticket.objects.create(title="unrecorded")
    assert not Assignation.objects.using("default").filter(pk=ctx.assignation_id).exists()
    assert not Assignation.objects.using("other").filter(pk=ctx.assignation_id).exists()
    return ctx.assignation_id or ""


def test_an_assignation_without_a_record_is_found_by_every_front_end(
    unrecorded: str, admin_user: Any
) -> None:
    stand_in = koherent.get_assignation(unrecorded)
    assert stand_in is not None
    assert stand_in._state.adding
    assert (stand_in.pk, stand_in.app, stand_in.origin) == (unrecorded, "raw", "unknown")
    assert stand_in._state.db == "default"  # where its record would be
    client = client_for(admin_user)
    # The admin: its timeline, read on other.
    timeline = client.get(reverse("admin:koherent_assignation_change", args=[unrecorded]))
    assert timeline.status_code == 200
    assert timeline.context["record"].origin == "unknown"
    assert [row["entry"].model_label for row in timeline.context["timeline"]] == [
        "multidbapp.Ticket"
    ]
    # GraphQL.
    data = graphql(client, ASSIGNATION, {"id": unrecorded})["assignation"]
    assert (data["id"], data["app"], data["changeCount"]) == (unrecorded, "raw", 1)
    assert data["models"] == [{"modelLabel": "multidbapp.Ticket", "count": 1}]
    # The command.
    out = StringIO()
    call_command("koherent_history", unrecorded, stdout=out)
    assert f"Assignation {unrecorded} (no record)" in out.getvalue()
    assert "1 change(s)" in out.getvalue()
    # And "not found", each its own way, for an id with neither record nor history.
    assert koherent.get_assignation("nothing-here") is None
    missing = reverse("admin:koherent_assignation_change", args=["nothing-here"])
    assert client.get(missing).status_code == 404
    assert graphql(client, ASSIGNATION, {"id": "nothing-here"}) == {"assignation": None}
    with pytest.raises(CommandError, match="unknown assignation"):
        call_command("koherent_history", "nothing-here", stdout=StringIO())
