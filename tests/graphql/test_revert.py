"""The revertAssignation mutation: permission, dry run, revert, conflicts (sync and async view)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection

import koherent
from tests.graphql.client import GraphQLClient
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

REVERT = """mutation($id: ID!, $dryRun: Boolean! = false, $force: Boolean! = false) {
  revertAssignation(id: $id, dryRun: $dryRun, force: $force) {
    __typename
    ... on RevertPlan {
      assignationId changeCount models unchanged summary
      deletes { action modelLabel objectId }
      restores { action modelLabel objectId fields }
      conflicts { kind modelLabel objectId assignationId }
    }
    ... on RevertResult {
      assignationId revertAssignationId deleted restored recreated summary
      revertAssignation { id origin parentId user { username } }
      plan { deletes { objectId } }
    }
    ... on RevertConflictError {
      message
      conflicts { kind modelLabel objectId assignationId date message }
      plan { summary }
    }
    ... on AlreadyRevertedError { message assignationId revertedBy }
    ... on AssignationNotFoundError { message assignationId }
    ... on RevertFailedError { message }
  }
}"""


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    """A staff user with the add, change and delete permissions of the test app's models."""
    carol = django_user_model.objects.create_user(username="carol", is_staff=True)
    carol.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="testapp",
            codename__regex=r"^(add|change|delete)_(order|item)$",
        )
    )
    return carol


@pytest.fixture
def created(user: Any) -> Order:
    """An order created, then updated, under the assignation ``made``."""
    with koherent.assignation("made", user=user, app="web"):
        order = Order.objects.create(reference="to-undo")
        order.status = "paid"
        order.save()
    return order


def revert(client: GraphQLClient, **variables: Any) -> dict[str, Any]:
    result = client.post(REVERT, variables)
    assert result.errors == [], result.errors
    data = dict(result.data["revertAssignation"])
    reported = result.assignation_id
    if data["__typename"] == "RevertResult":
        # The result names the assignation the revert's rows are written under, once.
        assert reported == data["revertAssignationId"], (reported, data)
    else:
        assert reported != "made"
    return data


def test_only_staff_users_may_revert(
    gql_client: GraphQLClient, user: Any, staff: Any, created: Order
) -> None:
    anonymous = gql_client.post(REVERT, {"id": "made"})
    assert anonymous.errors[0]["extensions"]["code"] == "FORBIDDEN"
    gql_client.login(user)  # authenticated, not staff
    for dry_run in (True, False):
        refused = gql_client.post(REVERT, {"id": "made", "dryRun": dry_run})
        assert refused.data is None
        assert refused.errors[0]["extensions"]["code"] == "FORBIDDEN"
        assert "not allowed to revert" in refused.errors[0]["message"]
    assert Order.objects.filter(pk=created.pk).exists()
    gql_client.login(staff)
    assert revert(gql_client, id="made")["__typename"] == "RevertResult"
    assert not Order.objects.filter(pk=created.pk).exists()


def test_the_permission_is_a_setting(
    gql_client: GraphQLClient, user: Any, created: Order, settings: Any
) -> None:
    settings.KOHERENT = {
        **settings.KOHERENT,
        "GRAPHQL_REVERT_PERMISSION": "koherent.strawberry.permissions.authenticated",
    }
    gql_client.login(user)
    assert revert(gql_client, id="made", dryRun=True)["__typename"] == "RevertPlan"


def test_dry_run_returns_the_plan_and_changes_nothing(
    gql_client: GraphQLClient, staff: Any, created: Order
) -> None:
    gql_client.login(staff)
    plan = revert(gql_client, id="made", dryRun=True)
    assert plan["__typename"] == "RevertPlan"
    assert (plan["assignationId"], plan["changeCount"], plan["models"]) == (
        "made",
        2,
        ["testapp.Order"],
    )
    assert plan["deletes"] == [
        {"action": "DELETE", "modelLabel": "testapp.Order", "objectId": str(created.pk)}
    ]
    assert plan["conflicts"] == []
    assert "1 to delete" in plan["summary"]
    assert Order.objects.filter(pk=created.pk, status="paid").exists()
    assert Order.history.count() == 2


def test_revert_runs_as_its_own_assignation(
    gql_client: GraphQLClient, staff: Any, created: Order
) -> None:
    gql_client.login(staff)
    result = revert(gql_client, id="made")
    assert result["__typename"] == "RevertResult"
    assert (result["deleted"], result["restored"], result["recreated"]) == (1, 0, 0)
    assert result["revertAssignation"] == {
        "id": result["revertAssignationId"],
        "origin": "revert",
        "parentId": "made",
        "user": {"username": "carol"},
    }
    assert not Order.objects.exists()
    deletion = Order.history.latest("history_date")
    assert (deletion.history_type, deletion.assignation_id) == (
        "-",
        result["revertAssignationId"],
    )
    again = revert(gql_client, id="made")
    assert again["__typename"] == "AlreadyRevertedError"
    assert again["revertedBy"] == [result["revertAssignationId"]]
    assert "already reverted" in again["message"]


def test_conflicts_come_back_as_a_typed_error(
    gql_client: GraphQLClient, staff: Any, other_user: Any, created: Order
) -> None:
    with koherent.assignation("later", user=other_user):
        order = Order.objects.get(pk=created.pk)
        order.total = 99
        order.save()
    gql_client.login(staff)
    refused = revert(gql_client, id="made")
    assert refused["__typename"] == "RevertConflictError"
    [conflict] = refused["conflicts"]
    assert (
        conflict["kind"],
        conflict["modelLabel"],
        conflict["objectId"],
        conflict["assignationId"],
    ) == ("CHANGED_LATER", "testapp.Order", str(created.pk), "later")
    assert conflict["date"]
    assert "changed later by later" in conflict["message"]
    assert "Nothing was changed" in refused["message"]
    assert "1 conflict(s)" in refused["plan"]["summary"]
    assert Order.objects.get(pk=created.pk).total == 99  # untouched
    forced = revert(gql_client, id="made", force=True)
    assert forced["__typename"] == "RevertResult"
    assert not Order.objects.filter(pk=created.pk).exists()


@pytest.mark.signal_capture
def test_an_unrecorded_change_comes_back_as_a_conflict_with_its_fields(
    gql_client: GraphQLClient, staff: Any, created: Order
) -> None:
    table = connection.ops.quote_name(Order._meta.db_table)
    with connection.cursor() as cursor:  # a change no history row records
        cursor.execute(f"UPDATE {table} SET total = 7 WHERE id = %s", [created.pk])
    gql_client.login(staff)
    result = gql_client.post(
        """mutation($id: ID!) { revertAssignation(id: $id) {
          __typename ... on RevertConflictError { conflicts { kind objectId fields message } }
        } }""",
        {"id": "made"},
    )
    assert result.errors == [], result.errors
    refused = result.data["revertAssignation"]
    assert refused["__typename"] == "RevertConflictError"
    assert refused["conflicts"] == [
        {
            "kind": "UNRECORDED_CHANGE",
            "objectId": str(created.pk),
            "fields": ["total"],
            "message": refused["conflicts"][0]["message"],
        }
    ]
    assert "no history row recorded" in refused["conflicts"][0]["message"]
    assert Order.objects.get(pk=created.pk).total == 7


def test_unknown_assignation(gql_client: GraphQLClient, staff: Any) -> None:
    gql_client.login(staff)
    missing = revert(gql_client, id="never-was")
    assert missing == {
        "__typename": "AssignationNotFoundError",
        "message": missing["message"],
        "assignationId": "never-was",
    }
    assert "unknown assignation" in missing["message"]
