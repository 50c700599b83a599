"""The audit context: nesting, inheritance, restore, validation, decorators, bind."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest

import koherent
from koherent.context import EMPTY, reset_context, set_context


def test_empty_by_default() -> None:
    ctx = koherent.current()
    assert ctx is EMPTY
    assert ctx.is_empty
    assert koherent.get_current_assignation_id() is None
    assert koherent.get_current_user_id() is None
    assert koherent.get_current_app() is None


def test_nesting_inherits_and_restores() -> None:
    with koherent.context(app="outer", user=7, assignation_id="A-1") as outer:
        assert (outer.app, outer.user_id, outer.assignation_id) == ("outer", 7, "A-1")
        with koherent.context(app="inner") as inner:
            assert inner.app == "inner"
            assert inner.user_id == 7
            assert inner.assignation_id == "A-1"
            assert koherent.current() is inner
        assert koherent.current() is outer
        with koherent.context(user=None):
            assert koherent.get_current_user_id() is None
            assert koherent.get_current_app() == "outer"
        assert koherent.get_current_user_id() == 7
    assert koherent.current() is EMPTY


def test_restores_after_exception() -> None:
    with koherent.context(app="outer"):
        with pytest.raises(RuntimeError), koherent.context(app="inner"):
            assert koherent.get_current_app() == "inner"
            raise RuntimeError("boom")
        assert koherent.get_current_app() == "outer"
    assert koherent.current() is EMPTY


def test_assignation_opens_fresh_ids_and_records_parent() -> None:
    with koherent.assignation() as first:
        assert first.assignation_id
        assert first.origin == "manual"
        assert first.parent_assignation_id is None
        with koherent.assignation(app="child") as child:
            assert child.assignation_id != first.assignation_id
            assert child.parent_assignation_id == first.assignation_id
            assert child.app == "child"
        assert koherent.get_current_assignation_id() == first.assignation_id
    with koherent.assignation() as second:
        assert second.assignation_id != first.assignation_id


def test_assignation_with_given_id() -> None:
    with koherent.assignation("import-2026-11", origin="script") as ctx:
        assert ctx.assignation_id == "import-2026-11"
        assert ctx.origin == "script"


def test_scope_object_reused_gives_fresh_id_each_time() -> None:
    scope = koherent.assignation()
    with scope as first:
        pass
    with scope as second:
        pass
    assert first.assignation_id != second.assignation_id


def test_sync_decorator_fresh_per_call_and_restores() -> None:
    seen: list[str | None] = []

    @koherent.assignation(app="job")
    def job() -> str | None:
        seen.append(koherent.get_current_app())
        return koherent.get_current_assignation_id()

    first, second = job(), job()
    assert first
    assert second
    assert first != second
    assert seen == ["job", "job"]
    assert koherent.current() is EMPTY


async def test_async_decorator_and_async_with() -> None:
    @koherent.context(app="async-job")
    async def job() -> str | None:
        await asyncio.sleep(0)
        return koherent.get_current_app()

    assert await job() == "async-job"
    assert koherent.current() is EMPTY
    async with koherent.assignation(app="block") as ctx:
        await asyncio.sleep(0)
        assert koherent.current() is ctx
    assert koherent.current() is EMPTY


def test_generator_keeps_its_context_without_leaking_it() -> None:
    @koherent.context(app="producer")
    def produce() -> Any:
        for n in range(3):
            yield (n, koherent.get_current_app())

    with koherent.context(app="consumer"):
        gen = produce()
        for n, app in gen:
            assert app == "producer"
            assert koherent.get_current_app() == "consumer", n
    assert koherent.current() is EMPTY


def test_generator_close_and_throw_run_in_its_context() -> None:
    seen: list[str | None] = []

    @koherent.context(app="producer")
    def produce() -> Any:
        try:
            while True:
                try:
                    yield 1
                except KeyError:
                    seen.append(f"caught:{koherent.get_current_app()}")
        finally:
            seen.append(f"closed:{koherent.get_current_app()}")

    gen = produce()
    next(gen)
    assert gen.throw(KeyError("k")) == 1
    gen.close()
    assert seen == ["caught:producer", "closed:producer"]
    assert koherent.current() is EMPTY


async def test_async_generator_keeps_its_context_without_leaking_it() -> None:
    @koherent.assignation(app="stream")
    async def stream() -> Any:
        for _ in range(3):
            await asyncio.sleep(0)
            yield koherent.get_current_assignation_id()

    with koherent.context(app="consumer"):
        ids = []
        async for value in stream():
            ids.append(value)
            assert koherent.get_current_app() == "consumer"
    assert len(set(ids)) == 1
    assert ids[0] is not None


def test_user_instance_pk_and_anonymous(django_user_model: Any) -> None:
    from django.contrib.auth.models import AnonymousUser

    unsaved = django_user_model(username="x")
    with pytest.raises(ValueError, match="saved"):
        koherent.context(user=unsaved)
    with koherent.context(user=AnonymousUser()) as ctx:
        assert ctx.user_id is None
    with koherent.context(user="12") as ctx:
        assert ctx.user_id == 12  # normalised to the user model's pk type


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"assignation_id": "has space"}, "not allowed"),
        ({"assignation_id": ""}, "empty"),
        ({"assignation_id": "x" * 1001}, "maximum is 1000"),
        ({"assignation_id": 5}, "must be a string"),
        ({"assignation_id": "-leading-dash"}, "not allowed"),
        ({"app": "bad app"}, "not allowed"),
        ({"app": "a" * 101}, "maximum is 100"),
        ({"user": True}, "bool"),
        ({"user": 3.5}, "primary key"),
        ({"user": "x" * 65}, "maximum is 64"),
        ({"user": "evil\nline"}, "control characters"),
        ({"origin": "Not Valid"}, "not allowed"),
    ],
)
def test_bad_values_are_refused_on_entry(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        koherent.context(**kwargs)
    assert koherent.current() is EMPTY


def test_bad_assignation_id_refused_by_assignation() -> None:
    with pytest.raises(ValueError, match="assignation id"):
        koherent.assignation("no/slashes")


def test_reset_never_raises_across_contexts() -> None:
    """A token made in another ``contextvars.Context`` is restored by value, without error."""
    scope = koherent.context(app="elsewhere")
    other = contextvars.copy_context()
    other.run(scope.__enter__)
    with koherent.context(app="here"):
        scope.__exit__(None, None, None)  # token belongs to `other`: must not raise
    token = contextvars.copy_context().run(set_context, koherent.current())
    reset_context(token)
    reset_context(token)  # used twice: still no error
    assert koherent.current() is EMPTY


def test_bind_into_thread_pool_and_negative_control() -> None:
    def read() -> tuple[str | None, str | None]:
        return koherent.get_current_assignation_id(), koherent.get_current_app()

    with ThreadPoolExecutor(max_workers=1) as pool, koherent.assignation(app="pool") as ctx:
        bound = pool.submit(koherent.bind(read)).result()
        unbound = pool.submit(read).result()
        # The worker thread is reused: the bound call must not have left its context there.
        after = pool.submit(read).result()
    assert bound == (ctx.assignation_id, "pool")
    assert unbound == (None, None)
    assert after == (None, None)


def test_bind_into_plain_thread_and_negative_control() -> None:
    results: dict[str, Any] = {}

    def read(key: str) -> None:
        results[key] = koherent.get_current_assignation_id()

    with koherent.assignation() as ctx:
        bound = threading.Thread(target=koherent.bind(read), args=("bound",))
        unbound = threading.Thread(target=read, args=("unbound",))
        bound.start()
        unbound.start()
        bound.join()
        unbound.join()
    assert results == {"bound": ctx.assignation_id, "unbound": None}


async def test_bind_async_function_runs_in_captured_context() -> None:
    async def read() -> str | None:
        return koherent.get_current_app()

    with koherent.context(app="captured"):
        bound = koherent.bind(read)
    with koherent.context(app="caller"):
        assert await bound() == "captured"
        assert koherent.get_current_app() == "caller"


def test_bind_outside_any_context_clears_the_callers() -> None:
    bound = koherent.bind(koherent.get_current_app)
    with koherent.context(app="caller"):
        assert bound() is None
        assert koherent.get_current_app() == "caller"


def test_evolve_and_equality() -> None:
    base = koherent.AuditContext(assignation_id="A", app="x")
    changed = base.evolve(app="y", user=3)
    assert changed.app == "y"
    assert changed.user_id == 3
    assert base.app == "x"
    assert koherent.AuditContext(assignation_id="A", app="x") == base
    assert changed != base
    assert "assignation_id='A'" in repr(base)


def test_the_import_forms_of_the_context_module() -> None:
    """What each import form gives (documented in koherent/context.py): ``koherent.context``
    is the function, the names of the module import from it, and importlib gives the module."""
    import importlib
    import types

    import koherent.context as imported
    from koherent.context import AuditContext, context

    module = importlib.import_module("koherent.context")
    assert isinstance(module, types.ModuleType)
    assert module.AuditContext is AuditContext is koherent.AuditContext
    assert cast("object", imported) is context is koherent.context is module.context
    with cast("Any", imported)(app="import-forms") as ctx:
        assert ctx.app == "import-forms"
