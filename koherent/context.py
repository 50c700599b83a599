"""The audit context: one frozen :class:`AuditContext` in one ``ContextVar``.

Everything Koherent stamps on a history row comes from here. Entry points (the middleware, the
GraphQL extension, the Celery worker hooks, :func:`context` and :func:`assignation`) set the
value with a token and reset it with that token when they are done, so nothing outlives its
scope. Because the value is a ``ContextVar``, asyncio tasks copy it when they are created and
asgiref's ``sync_to_async`` carries it into its thread; threads and executors do not, which is
what :func:`bind` is for.

Importing: ``from koherent.context import AuditContext`` (any name of this module) works. The
attribute ``koherent.context`` is the function :func:`context`, not this module (the package
binds it after importing the module), so ``import koherent.context as m`` gives the function
too; ``importlib.import_module("koherent.context")`` gives the module.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from koherent._logging import get_logger
from koherent._users import UserRef, user_ref_for
from koherent._validation import (
    validate_app,
    validate_assignation_id,
    validate_origin,
    validate_task_id,
)
from koherent.exceptions import AssignationAccessDenied

logger = get_logger("koherent")

P = ParamSpec("P")
R = TypeVar("R")


class _Unset:
    """Marks a field that was not given, so it is inherited from the enclosing context."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True, eq=False, init=False)
class AuditContext:
    """Who is changing data, through which app, under which assignation, in which task.

    Instances are immutable; :meth:`evolve` returns a changed copy. Every field is ``None``
    when unset. ``user_id`` is read through a reference, so for a request it is the user that
    authentication settled on by the time it is read.
    """

    assignation_id: str | None = None
    app: str | None = None
    task_id: str | None = None
    #: What opened the assignation: ``request``, ``celery``, ``manual``, ``revert``, ...
    origin: str | None = None
    #: The assignation this one was opened under (recorded on its ``Assignation`` record).
    parent_assignation_id: str | None = None
    user_ref: UserRef | None = field(default=None, repr=False)

    def __init__(
        self,
        assignation_id: str | None = None,
        app: str | None = None,
        task_id: str | None = None,
        origin: str | None = None,
        parent_assignation_id: str | None = None,
        user_ref: UserRef | None = None,
    ) -> None:
        # A context is made for every scope entered and every task run. The slots' own
        # setters skip the frozen class's __setattr__, which makes this three times faster
        # than the generated __init__ (which goes through object.__setattr__ per field).
        _set_assignation_id(self, assignation_id)
        _set_app(self, app)
        _set_task_id(self, task_id)
        _set_origin(self, origin)
        _set_parent_assignation_id(self, parent_assignation_id)
        _set_user_ref(self, user_ref)

    @property
    def user_id(self) -> Any:
        """The primary key of the context's user, or ``None``."""
        ref = self.user_ref
        return None if ref is None else ref.pk

    @property
    def is_empty(self) -> bool:
        """True when the context names no user, app or assignation."""
        return self.assignation_id is None and self.app is None and self.user_ref is None

    def evolve(self, **changes: Any) -> AuditContext:
        """A copy with ``changes`` applied (``user=`` takes a user or a primary key)."""
        if "user" in changes:
            changes["user_ref"] = user_ref_for(changes.pop("user"))
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The context's fields as plain values (the user as ``user_id``)."""
        return {
            "user_id": self.user_id,
            "app": self.app,
            "assignation_id": self.assignation_id,
            "task_id": self.task_id,
            "origin": self.origin,
            "parent_assignation_id": self.parent_assignation_id,
        }

    def __eq__(self, other: object) -> bool:
        if self is other:
            # asgiref compares every contextvar at each sync/async hop: answer without reading
            # the user (which, for a request, may not be resolved yet).
            return True
        if not isinstance(other, AuditContext):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.as_dict().items()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if v is not None)
        return f"AuditContext({fields})"


def _slot_setter(name: str) -> Callable[[AuditContext, Any], None]:
    """The setter of one of :class:`AuditContext`'s slots (used by its ``__init__`` only)."""
    setter: Callable[[AuditContext, Any], None] = getattr(AuditContext, name).__set__
    return setter


_set_assignation_id = _slot_setter("assignation_id")
_set_app = _slot_setter("app")
_set_task_id = _slot_setter("task_id")
_set_origin = _slot_setter("origin")
_set_parent_assignation_id = _slot_setter("parent_assignation_id")
_set_user_ref = _slot_setter("user_ref")

#: The context seen when none is set. Its fields are all ``None``.
EMPTY = AuditContext()

_current: ContextVar[AuditContext | None] = ContextVar("koherent_audit_context", default=None)


def current() -> AuditContext:
    """The audit context in effect here (:data:`EMPTY` when none is set)."""
    value = _current.get()
    return EMPTY if value is None else value


def peek() -> AuditContext | None:
    """The audit context set here, or ``None`` when none is (where :func:`current` gives
    :data:`EMPTY`): what an integration reads to tell "no context" from an empty one."""
    return _current.get()


def get_current_assignation_id() -> str | None:
    """The assignation id in effect, or ``None``."""
    value = _current.get()
    return None if value is None else value.assignation_id


def get_current_user_id() -> Any:
    """The primary key of the user in effect, or ``None``."""
    value = _current.get()
    return None if value is None else value.user_id


def get_current_app() -> str | None:
    """The app in effect, or ``None``."""
    value = _current.get()
    return None if value is None else value.app


def get_current_task_id() -> str | None:
    """The id of the task (Celery, or Django's tasks framework) running here, or ``None``."""
    value = _current.get()
    return None if value is None else value.task_id


def set_context(value: AuditContext | None) -> Token[AuditContext | None]:
    """Put ``value`` in effect; pass the returned token to :func:`reset_context` afterwards.

    For integrations that cannot use a ``with`` block (signal pairs, generator hooks).
    """
    return _current.set(value)


def reset_context(token: Token[AuditContext | None]) -> None:
    """Restore the value that was in effect before ``token`` was made.

    Never raises: when the token cannot be used here (it was made in another
    ``contextvars.Context``, for instance by a generator finalised in another task, or it was
    used already), the previous value is set directly instead.
    """
    try:
        _current.reset(token)
    except (ValueError, RuntimeError) as exc:
        previous = token.old_value
        _current.set(None if previous is Token.MISSING else previous)
        logger.debug("koherent: context token could not be reset (%s); restored by value", exc)


def new_assignation_id() -> str:
    """A fresh assignation id (a random UUID)."""
    return str(uuid.uuid4())


class _Scope:
    """Puts a context value in effect: as ``with``/``async with`` block or as decorator.

    Subclasses say which value (:meth:`_value`). Used as a decorator, the value is worked out
    again for every call, from the caller's context at the time of the call; generators and
    async generators run each step with the value set and restore the consumer's context in
    between, so a streaming body keeps its context without leaking it.
    """

    def __init__(self) -> None:
        self._tokens: list[Token[AuditContext | None]] = []

    def _value(self, outer: AuditContext) -> AuditContext | None:
        raise NotImplementedError

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> AuditContext:
        value = self._value(current())
        self._tokens.append(_current.set(value))
        return EMPTY if value is None else value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # One scope object may be entered by several threads or tasks at once (a module-level
        # ``with`` target): reset with the token made in *this* Context, not the last one made.
        for token in reversed(list(self._tokens)):
            try:
                _current.reset(token)
            except (ValueError, RuntimeError):
                continue
            self._tokens.remove(token)
            return
        if self._tokens:  # no token of this Context (e.g. exited from another task)
            reset_context(self._tokens.pop())

    async def __aenter__(self) -> AuditContext:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator -------------------------------------------------------------------------
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    @overload
    def __call__(self, fn: type) -> type: ...

    def __call__(self, fn: Any) -> Any:
        if inspect.isasyncgenfunction(fn):
            return self._wrap_async_generator(fn)
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)
        if inspect.iscoroutinefunction(fn):
            return self._wrap_coroutine(fn)
        if callable(fn):
            return self._wrap_function(fn)
        raise TypeError(f"cannot decorate {fn!r}: not a function")

    def _wrap_function(self, fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            token = _current.set(self._value(current()))
            try:
                return fn(*args, **kwargs)
            finally:
                reset_context(token)

        return wrapper

    def _wrap_coroutine(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            token = _current.set(self._value(current()))
            try:
                return await fn(*args, **kwargs)
            finally:
                reset_context(token)

        return wrapper

    def _wrap_generator(self, fn: Callable[P, Generator[Any, Any, Any]]) -> Callable[P, Any]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
            return run_generator_in(self._value(current()), fn(*args, **kwargs))

        return wrapper

    def _wrap_async_generator(
        self, fn: Callable[P, AsyncGenerator[Any, Any]]
    ) -> Callable[P, AsyncGenerator[Any, Any]]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Any, Any]:
            return run_async_generator_in(self._value(current()), fn(*args, **kwargs))

        return wrapper


class _SetEach:
    """``with`` puts one value in effect and restores the previous one, again and again: for
    the steps of a generator, each run between the consumer's own."""

    __slots__ = ("_token", "_value")

    def __init__(self, value: AuditContext | None) -> None:
        self._value = value

    def __enter__(self) -> None:
        self._token = _current.set(self._value)

    def __exit__(self, *exc_info: object) -> None:
        reset_context(self._token)


def run_generator_in(
    value: AuditContext | None, gen: Generator[Any, Any, R]
) -> Generator[Any, Any, R]:
    """Drive ``gen`` with ``value`` in effect during each of its steps, and only then."""
    in_value = _SetEach(value)
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        with in_value:
            try:
                item = gen.throw(to_throw) if to_throw is not None else gen.send(to_send)
            except StopIteration as stop:
                return cast("R", stop.value)
        to_throw = None
        try:
            to_send = yield item
        except GeneratorExit:
            with in_value:
                gen.close()
            raise
        except BaseException as exc:
            to_throw = exc


async def run_async_generator_in(
    value: AuditContext | None, agen: AsyncGenerator[Any, Any]
) -> AsyncGenerator[Any, Any]:
    """Drive ``agen`` with ``value`` in effect during each of its steps, and only then."""
    in_value = _SetEach(value)
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        with in_value:
            try:
                if to_throw is not None:
                    item = await agen.athrow(to_throw)
                else:
                    item = await agen.asend(to_send)
            except StopAsyncIteration:
                return
        to_throw = None
        try:
            to_send = yield item
        except GeneratorExit:
            with in_value:
                await agen.aclose()
            raise
        except BaseException as exc:
            to_throw = exc


class _MergedScope(_Scope):
    """The enclosing context with some fields replaced (see :func:`context`)."""

    def __init__(
        self, changes: dict[str, Any], *, opens: bool = False, fresh: bool = False
    ) -> None:
        super().__init__()
        self._changes = changes
        self._opens = opens
        self._fresh = fresh

    def _value(self, outer: AuditContext) -> AuditContext:
        changes = dict(self._changes)
        if self._fresh:
            changes["assignation_id"] = new_assignation_id()
        if self._opens and changes.get("assignation_id") != outer.assignation_id:
            # A new assignation opened inside another one is its child.
            changes.setdefault("parent_assignation_id", outer.assignation_id)
        return replace(outer, **changes)


class _FixedScope(_Scope):
    """Exactly one given value, whatever encloses it (see :func:`bind`)."""

    def __init__(self, value: AuditContext | None) -> None:
        super().__init__()
        self._fixed = value

    def _value(self, outer: AuditContext) -> AuditContext | None:
        return self._fixed


def _validated_changes(
    *,
    user: Any,
    app: Any,
    assignation_id: Any,
    origin: Any,
    task_id: Any,
    parent_assignation_id: Any,
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if user is not UNSET:
        changes["user_ref"] = user_ref_for(user)
    for name, given, validator in (
        ("app", app, validate_app),
        ("assignation_id", assignation_id, validate_assignation_id),
        ("origin", origin, validate_origin),
        ("task_id", task_id, validate_task_id),
        ("parent_assignation_id", parent_assignation_id, validate_assignation_id),
    ):
        if given is None or given is UNSET:
            if given is None:
                changes[name] = None
            continue
        try:
            changes[name] = validator(given)
        except ValueError as exc:
            if name == "parent_assignation_id":
                raise ValueError(f"parent {exc}") from None
            raise
    return changes


def context(
    *,
    user: Any = UNSET,
    app: Any = UNSET,
    assignation_id: Any = UNSET,
    origin: Any = UNSET,
    task_id: Any = UNSET,
    parent_assignation_id: Any = UNSET,
) -> _Scope:
    """Change the audit context for a block, a function or a generator.

    Fields not given are inherited from the enclosing context; a field given as ``None`` is
    cleared. ``user`` takes a user instance or a primary key. Values are validated here, so a
    bad one raises ``ValueError`` before anything runs::

        with koherent.context(user=request.user, app="importer"):
            Order.objects.create(...)

        @koherent.context(app="nightly-sync")
        async def sync(): ...

    On exit the previous value is restored exactly, also when the block raises.
    """
    return _MergedScope(
        _validated_changes(
            user=user,
            app=app,
            assignation_id=assignation_id,
            origin=origin,
            task_id=task_id,
            parent_assignation_id=parent_assignation_id,
        )
    )


def assignation(
    assignation_id: str | None = None,
    *,
    user: Any = UNSET,
    app: Any = UNSET,
    origin: Any = "manual",
    parent_assignation_id: Any = UNSET,
) -> _Scope:
    """Open an assignation: every change inside is grouped under one id.

    With no id a fresh one (a UUID) is made each time the block is entered or the decorated
    function is called. The enclosing assignation, if any, becomes the new one's parent.
    Entering returns the context::

        with koherent.assignation(app="importer") as ctx:
            run_import()
        print(ctx.assignation_id)
    """
    changes = _validated_changes(
        user=user,
        app=app,
        assignation_id=UNSET if assignation_id is None else assignation_id,
        origin=origin,
        task_id=UNSET,
        parent_assignation_id=parent_assignation_id,
    )
    return _MergedScope(changes, opens=True, fresh=assignation_id is None)


def bind(fn: Callable[P, R]) -> Callable[P, R]:
    """Return ``fn`` bound to the audit context in effect now.

    Whenever and wherever the result is called (another thread, an executor, a callback, a
    task created later) ``fn`` runs in the context captured here, and the caller's own context
    is restored afterwards. Sync functions give sync callables, async functions async ones.
    """
    return _FixedScope(_current.get())(fn)


def use(value: AuditContext | None) -> _Scope:
    """Put exactly ``value`` in effect (``None`` for no context), whatever encloses it.

    For integrations restoring a context they received (a task header, a stored value).
    """
    return _FixedScope(value)


def may_leave(ctx: AuditContext, exit: str, what: object = None) -> bool:
    """Whether ``ctx`` may leave the process through ``exit`` (``"HTTP request"``, ...).

    The one place every exit asks. A context is held back when its user reference refuses
    (its ``before_leaving()`` hook raises: a request's user checked late,
    :class:`koherent.access.CheckedLaterUserRef`, whose request named an assignation it could
    not join when it arrived and the user read now may still not join it), or when the verdict
    cannot be reached here (fail closed). Each refusal is logged at WARNING with ``exit`` and
    ``what`` (the task, the host). Any other context may leave: its request's access was
    decided, and allowed, when it arrived. Costs nothing but an attribute lookup for those.
    """
    hook = getattr(ctx.user_ref, "before_leaving", None)
    if hook is None:
        return True
    try:
        hook()
    except AssignationAccessDenied as refusal:
        reason: object = refusal
    except Exception as exc:  # the verdict cannot be reached here: the context stays
        reason = f"the access to the assignation cannot be decided here ({exc})"
    else:
        return True
    logger.warning(
        "koherent: %s %s goes without the audit context, which may not leave this process: %s",
        exit,
        what,
        reason,
    )
    return False
