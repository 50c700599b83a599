"""Scenario 5, undo: put back every object an operation changed, as it was before it.

Each contender has ``Parent`` and ``Child`` models (a child points at its parent). A set-up
operation creates ``objects`` objects (a fifth of them parents); then *the* operation changes
each object ``changes / objects`` times (``changes`` history entries in all). Undoing it:

* Koherent: ``revert_assignation(id)``: its plan from the history, conflict detection under
  row locks, bulk writes, recorded as a new assignation;
* django-reversion: ``Revision.revert()`` of the set-up revision (reversion restores *to* a
  snapshot, so undoing an operation means reverting the revision before it), inside a new
  revision, as reversion's own admin does;
* django-simple-history, object by object: the last history row before the operation
  (``obj.history.filter(history_date__lt=start).latest()``), then ``row.instance.save()``.

Neither peer looks for conflicting later changes. Each undo runs inside a transaction that
is rolled back afterwards, so every repetition undoes the same data (the one commit each
would end with is not timed). After each undo the objects are compared with their state
before the operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db import transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from benchmarks import contexts
from benchmarks.harness import Entry, count_queries, interleave, reset_database
from benchmarks.results import group, row_of, target

CONTENDERS = ("koherent", "reversion", "simplehistory")


def missing() -> str | None:
    try:
        import koherent.revert  # noqa: F401
    except ImportError:
        return "koherent.revert is not available"
    return None


def _models(contender: str) -> tuple[Any, Any]:
    return (
        apps.get_model(f"bench_{contender}", "Parent"),
        apps.get_model(f"bench_{contender}", "Child"),
    )


def _state(contender: str) -> list[tuple[Any, ...]]:
    parent, child = _models(contender)
    return sorted(parent.objects.values_list("id", "name", "value")) + sorted(
        child.objects.values_list("id", "parent_id", "name", "value")
    )


def _new_objects(contender: str, objects: int) -> tuple[list[Any], list[Any]]:
    parent_model, child_model = _models(contender)
    parents = [parent_model(name=f"parent {i}", value=i) for i in range(objects // 5)]
    return parents, [
        child_model(name=f"child {i}", value=i) for i in range(objects - len(parents))
    ]


def _set_up(contender: str, objects: int, rounds: int, user: Any) -> dict[str, Any]:
    """Write the set-up and the operation; what each undo needs to know."""
    parent_model, child_model = _models(contender)
    parents, children = _new_objects(contender, objects)

    def change_everything() -> None:
        for obj in (*parents, *children):
            obj.value += 1
            obj.name = obj.name.rsplit(" v", 1)[0] + f" v{obj.value}"

    if contender == "reversion":
        from reversion.models import Revision

        with contexts.reversion_revision(user):
            for p in parents:
                p.save()
            for i, c in enumerate(children):
                c.parent = parents[i % len(parents)]
                c.save()
        setup = Revision.objects.latest("pk")
        before = _state(contender)
        with contexts.reversion_revision(user):
            for _ in range(rounds):
                change_everything()
                for obj in (*parents, *children):
                    obj.save()
        assert Revision.objects.latest("pk").version_set.count() == objects
        return {"revision": setup.pk, "changes": objects * rounds, "before": before}

    opener = (
        (lambda: contexts.koherent_context(user))
        if contender == "koherent"
        else (lambda: contexts.simple_history_context(user))
    )
    with opener():
        parents = bulk_create_with_history(parents, parent_model)
        for i, c in enumerate(children):
            c.parent = parents[i % len(parents)]
        children = bulk_create_with_history(children, child_model)
    before = _state(contender)
    start = timezone.now()
    with opener() as operation:
        for _ in range(rounds):
            change_everything()
            bulk_update_with_history(parents, parent_model, ["name", "value"])
            bulk_update_with_history(children, child_model, ["name", "value"])
    changes = parent_model.history.filter(history_date__gte=start).count()
    changes += child_model.history.filter(history_date__gte=start).count()
    return {"assignation": operation, "start": start, "changes": changes, "before": before}


def _undo(contender: str, facts: dict[str, Any], user: Any) -> Callable[[], None]:
    parent_model, child_model = _models(contender)
    if contender == "koherent":
        from koherent.revert import revert_assignation

        def koherent_undo() -> None:
            with contexts.koherent_context(user):
                revert_assignation(facts["assignation"])

        return koherent_undo
    if contender == "reversion":
        from reversion.models import Revision

        def reversion_undo() -> None:
            with contexts.reversion_revision(user):
                Revision.objects.get(pk=facts["revision"]).revert()

        return reversion_undo

    def simple_history_undo() -> None:
        start = facts["start"]
        with contexts.simple_history_context(user):
            for model in (parent_model, child_model):
                for obj in model.objects.all():
                    before = obj.history.filter(history_date__lt=start).latest()
                    before.instance.save()

    return simple_history_undo


def run(size: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    objects, changes, repetitions = size["objects"], size["changes"], size["repetitions"]
    rounds = changes // objects
    reset_database()
    user = contexts.bench_user()
    facts: dict[str, dict[str, Any]] = {}
    for contender in CONTENDERS:
        facts[contender] = _set_up(contender, objects, rounds, user)
        log(f"{contender}: set up ({facts[contender]['changes']:,} changes to undo)")
    # The state before the operation is the state an undo must give back.
    before = {c: facts[c]["before"] for c in CONTENDERS}

    restored: dict[str, list[bool]] = {c: [] for c in CONTENDERS}
    queries: dict[str, int] = {}

    def entry(contender: str) -> Entry:
        undo = _undo(contender, facts[contender], user)

        def timed() -> None:
            with transaction.atomic():
                undo()
                restored[contender].append(_state(contender) == before[contender])
                transaction.set_rollback(True)

        return Entry.single(contender, timed)

    changed = {c: _state(c) != before[c] for c in CONTENDERS}
    log(f"{len(CONTENDERS)} contenders x {repetitions} undos")
    stats = interleave([entry(c) for c in CONTENDERS], repetitions, progress=log)
    for contender in CONTENDERS:
        with transaction.atomic(), count_queries() as counter:
            _undo(contender, facts[contender], user)()
            transaction.set_rollback(True)
        queries[contender] = counter.count

    result = group(
        "undo",
        f"Undo one operation: {changes:,} changes over {objects:,} objects of two models",
        stats,
        baseline="reversion",
        scale=1e3,
        extra={c: {"queries": queries[c]} for c in CONTENDERS},
        columns={"queries": "queries"},
        order=list(CONTENDERS),
    )
    k, rev = row_of(result, "koherent"), row_of(result, "reversion")
    targets = [
        target(
            "Koherent (conflict check included) at least 3x faster than django-reversion",
            f"{rev['median'] / k['median']:.1f}x faster ({k['median']:.0f} ms vs "
            f"{rev['median']:.0f} ms)",
            rev["median"] / k["median"] >= 3,
        ),
        target(
            "Koherent in under 50 queries",
            f"{queries['koherent']} queries",
            queries["koherent"] < 50,
        ),
    ]
    return {
        "title": "Undo",
        "question": "How long does undoing one large operation take, and in how many queries?",
        "method": (
            f"Set-up: {objects:,} objects created (a fifth parents, the rest children); the "
            f"operation then changes every object {rounds} times ({changes:,} changes). "
            f"Each contender undoes it {repetitions} times, interleaved, each time in a "
            "transaction rolled back afterwards; every undo is checked to give back the state "
            "from before the operation."
        ),
        "sizes": size,
        "unit": "ms per undo",
        "groups": [result],
        "targets": targets,
        "notes": [
            "Koherent checks every object for later changes by other assignations under row "
            "locks, and records the undo as an assignation that can itself be reverted; the "
            "peers do neither check. reversion runs inside a new revision, simple-history "
            "writes a history row per restored object: all three record the undo.",
            "django-reversion keeps one version per object and revision, so its revision of "
            f"the operation holds {objects:,} versions for the {changes:,} changes.",
        ],
        "checks": {
            "changes": {c: facts[c]["changes"] for c in CONTENDERS},
            "changed_before_undo": changed,
            "restored": restored,
        },
    }
