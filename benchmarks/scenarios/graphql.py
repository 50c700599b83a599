"""Scenario 6, GraphQL: list an assignation's history entries with their changes and users.

One assignation of ``entries`` changes (creations and updates of two models, by two users
in turn). The GraphQL query asks for every entry with its effective field changes (old and
new value) and its user, posted to strawberry's async Django view through Django's
``AsyncClient`` (the whole request: middleware, session user, view, Koherent's extension and
batch loaders). The baseline fetches the same data with Koherent's Python API
(:func:`koherent.query.history_for_assignation`, :func:`~koherent.query.effective_changes`
and one query for the users), so the ratio is what GraphQL adds. Both read the first page
through the history function (:mod:`koherent.query._function`), as a project with persistent
connections does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from benchmarks.harness import Entry, count_queries, interleave, reset_database
from benchmarks.results import group
from benchmarks.scenarios.query import install_history_function

QUERY = """query($id: ID!, $first: Int!) {
  assignation(id: $id) {
    id
    changes(first: $first) {
      entries {
        id kind date modelLabel objectId app assignationId
        user { id username }
        changes { field oldValue newValue }
      }
    }
  }
}"""


def missing() -> str | None:
    try:
        import koherent.strawberry.types  # noqa: F401
    except ImportError as exc:
        return f"Koherent's GraphQL types are not available ({exc})"
    return None


def _history(entries: int, users: list[Any]) -> str:
    """``entries`` history rows under one assignation; its id."""
    import koherent

    parent_model = apps.get_model("bench_koherent", "Parent")
    child_model = apps.get_model("bench_koherent", "Child")
    quarter = entries // 4
    assignation_id = koherent.new_assignation_id()
    written: list[Any] = []
    for n in range(entries):
        user = users[n % len(users)]
        with koherent.context(assignation_id=assignation_id, user=user, app="bench"):
            step, i = divmod(n, quarter)
            if step == 0:
                written.append(parent_model.objects.create(name=f"parent {i}", value=i))
            elif step == 1:
                parent = written[i % len(written)]
                parent.value += 1
                parent.save()
            elif step == 2:
                written.append(
                    child_model.objects.create(
                        parent=written[i % quarter], name=f"child {i}", value=i
                    )
                )
            else:
                child = written[quarter + i % max(len(written) - quarter, 1)]
                child.name = f"{child.name} v2"
                child.save()
    return assignation_id


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    from koherent.query import effective_changes, history_for_assignation

    entries, repetitions = size["entries"], size["repetitions"]
    reset_database()
    # The history function of this project's tracked models, as its ``migrate`` makes it (the
    # run database was migrated by a process tracking another set of models).
    install_history_function("default")
    user_model = get_user_model()
    users = [user_model.objects.get_or_create(username=name)[0] for name in ("bench", "bench-2")]
    assignation_id = _history(entries, users)
    client = AsyncClient()
    client.force_login(users[0])
    body = json.dumps({"query": QUERY, "variables": {"id": assignation_id, "first": entries}})
    returned: dict[str, list[int]] = {"graphql": [], "python": []}

    def post(name: str, path: str) -> Callable[[], None]:
        def request() -> None:
            response = async_to_sync(client.post)(path, body, content_type="application/json")
            data = response.json()
            assert not data.get("errors"), data["errors"]
            listed = data["data"]["assignation"]["changes"]["entries"]
            assert all(e["user"] and e["changes"] for e in listed)
            returned[name].append(len(listed))

        return request

    graphql = post("graphql", "/graphql/")

    def python() -> None:
        page = history_for_assignation(assignation_id).page(first=entries)
        listed = page.entries
        changes = effective_changes(listed)
        found = user_model.objects.in_bulk({e.user_id for e in listed})
        assert all(found.get(int(e.user_id)) for e in listed if e.user_id)
        assert all(changes)
        returned["python"].append(len(listed))

    ways = {"graphql": graphql, "python": python}
    for fn in ways.values():  # warm up: schema, loaders, query plans
        fn()
    log(f"{len(ways)} ways x {repetitions} rounds of {entries} entries")
    stats = interleave(
        [Entry.single(name, fn) for name, fn in ways.items()], repetitions, progress=None
    )
    queries = {}
    for name, fn in ways.items():
        with count_queries() as counter:
            fn()
        queries[name] = counter.count
    result = group(
        "list",
        f"{entries} history entries with their field changes and users",
        stats,
        baseline="python",
        scale=1e3,
        extra={name: {"queries": queries[name]} for name in stats},
        columns={"queries": "queries"},
        order=list(ways),
    )
    labels = {
        "graphql": "Koherent, GraphQL async view",
        "python": "Koherent, Python API (same data)",
    }
    for row in result["rows"]:
        row["label"] = labels[row["contender"]]
        if row["contender"] == "graphql":
            row["contender"] = "koherent"
    graphql_row = result["rows"][0]
    return {
        "title": "GraphQL",
        "question": "What does listing history entries with changes and users cost over GraphQL?",
        "method": (
            f"One assignation of {entries} changes (creations and updates of two models, two "
            f"users in turn). {repetitions} rounds alternating, in random order, the GraphQL "
            "request to the async view (Django's AsyncClient, session login) and the same data "
            "read with Koherent's Python API."
        ),
        "sizes": size,
        "unit": "ms per request",
        "groups": [result],
        "targets": [],
        "headlines": [
            {
                "text": f"list {entries} entries with changes and users (async view)",
                "measured": f"{graphql_row['median']:.1f} ms, {queries['graphql']} queries",
            }
        ],
        "notes": [
            "The GraphQL figure includes the whole request through Django's async handler "
            "(session and authentication middleware, the view, the extension, the batch "
            "loaders) and the event loop that AsyncClient runs it in; its queries include the "
            "session and user lookups of the login.",
            "Both read the first page of the assignation's history in one query, through the "
            "history function migrate creates (koherent.query._function), as a project whose "
            "connections persist does.",
        ],
        "checks": {"returned": returned, "queries": queries, "expected": entries},
    }
