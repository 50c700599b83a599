"""Where ``@audited`` goes: above the task decorator (as for Django's tasks framework), or
under it (on the function, its place before 0.3.0). Eager runs of an app Koherent was not
installed on, so only the opted-in tasks take a context."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from celery import Celery, shared_task

import koherent
from koherent.celery import audited
from koherent.exceptions import AuditContextRequired

pytestmark = pytest.mark.django_db

#: ``@audited`` with options, the same in every placement.
fresh = audited(fresh_assignation=True, app="nightly", origin="beat")


def seen() -> dict[str, Any]:
    ctx = koherent.current()
    return {"app": ctx.app, "origin": ctx.origin, "fresh": ctx.assignation_id is not None}


@pytest.fixture
def app() -> Iterator[Celery]:
    made = Celery("placement", set_as_current=False)
    made.conf.update(
        broker_url="memory://", result_backend="cache+memory://", task_always_eager=True
    )
    yield made
    made.close()


def fresh_run(task: Any) -> dict[str, Any]:
    result: dict[str, Any] = task.apply().get()
    return result


def test_above_a_lazy_task_of_an_app_not_yet_finalized(app: Celery) -> None:
    @fresh
    @app.task(name="placement.above_lazy")
    def above() -> dict[str, Any]:
        return seen()

    @app.task(name="placement.plain")
    def plain() -> dict[str, Any]:
        return seen()

    assert not cast("Any", app).finalized  # the decorator did not evaluate Celery's proxy
    assert fresh_run(app.tasks["placement.above_lazy"]) == {
        "app": "nightly",
        "origin": "beat",
        "fresh": True,
    }
    # Control: a task that did not opt in runs without a context.
    assert fresh_run(plain) == {"app": None, "origin": None, "fresh": False}


def test_above_and_under_give_the_same_task(app: Celery) -> None:
    app.finalize()

    @fresh
    @app.task(name="placement.above")
    def above() -> dict[str, Any]:
        return seen()

    @app.task(name="placement.under")
    @fresh
    def under() -> dict[str, Any]:
        return seen()

    assert (
        fresh_run(above)
        == fresh_run(under)
        == {
            "app": "nightly",
            "origin": "beat",
            "fresh": True,
        }
    )


def test_above_a_shared_task(app: Celery) -> None:
    @fresh
    @shared_task(name="placement.above_shared")
    def above_shared() -> dict[str, Any]:
        return seen()

    app.finalize()  # makes the app's copy of the shared task
    assert fresh_run(app.tasks["placement.above_shared"])["origin"] == "beat"


@pytest.mark.parametrize("place", ["above", "under", "above-shared"])
def test_require_context_stops_the_body_in_either_place(app: Celery, place: str) -> None:
    ran: list[str] = []

    def body() -> None:
        ran.append(place)

    name = f"placement.required_{place}"
    decorate: Callable[[Any], Any]
    if place == "above":
        decorate = lambda fn: audited(require_context=True)(app.task(name=name)(fn))  # noqa: E731
    elif place == "under":
        decorate = lambda fn: app.task(name=name)(audited(require_context=True)(fn))  # noqa: E731
    else:
        decorate = lambda fn: audited(require_context=True)(shared_task(name=name)(fn))  # noqa: E731
    decorate(body)
    task = app.tasks[name]
    with pytest.raises(AuditContextRequired, match="requires an audit context"):
        task.apply().get()
    assert ran == []
    with koherent.assignation(app="caller"):
        task.apply().get()
    assert ran == [place]


def test_anything_but_a_celery_task_or_a_function_is_refused() -> None:
    with pytest.raises(TypeError, match=r"takes a Celery task or its function"):
        audited(42)
    with pytest.raises(TypeError, match=r"takes a Celery task or its function"):
        audited(fresh_assignation=True)("not a task")
