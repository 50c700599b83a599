"""References to the user of a context: by primary key, by instance, or late from a request.

A context holds a *reference* to its user rather than a user instance, so that

* a Celery worker can stamp rows with the user id from the task header without fetching the
  user (the reference makes a ``User(pk=...)`` placeholder, enough for a foreign key);
* a request's user is read when it is needed, not when the middleware runs, so authentication
  that happens later (Django REST framework authenticates in the view) still counts;
* a user deleted before the history row is written is detected once per context (one query,
  only for references made from a bare primary key) and the row is written without a user
  instead of failing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from koherent._django import cached_async_user, lazy_object_resolved
from koherent._logging import get_logger
from koherent._validation import validate_user_pk
from koherent.loop import in_event_loop

if TYPE_CHECKING:
    from django.db.models import Model
    from django.http import HttpRequest

logger = get_logger("koherent")


class UserRef(Protocol):
    """What a context knows about its user.

    A reference may also define ``before_write() -> None``, which a tracked save calls before
    it writes anything (:func:`check_before_write`), to refuse the write by raising.
    """

    @property
    def pk(self) -> Any:
        """The user's primary key, or ``None`` when there is no (authenticated) user."""

    def for_history(self) -> Model | None:
        """The user to put in a history row's ``history_user``, or ``None``."""


def _user_model() -> type[Model]:
    from django.contrib.auth import get_user_model

    return get_user_model()


def _normalise_pk(value: Any) -> Any:
    """Convert a primary key to the user model's Python type (``"5"`` -> ``5``)."""
    from django.apps import apps
    from django.core.exceptions import ValidationError

    if not apps.ready:
        return value
    try:
        return _user_model()._meta.pk.to_python(value)
    except (ValidationError, TypeError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a valid user primary key: {exc}") from None


class StaticUserRef:
    """A user known by primary key, and perhaps by instance."""

    __slots__ = ("_exists", "_instance", "_pk", "_placeholder")

    def __init__(self, pk: Any, instance: Model | None = None) -> None:
        self._pk = pk
        self._instance = instance
        self._placeholder: Model | None = None
        # None: not checked yet. A reference made from an instance needs no check.
        self._exists: bool | None = True if instance is not None else None

    def __repr__(self) -> str:
        return f"StaticUserRef(pk={self._pk!r})"

    @property
    def pk(self) -> Any:
        return self._pk

    def for_history(self) -> Model | None:
        if self._instance is not None:
            return self._instance
        if self._exists is None:
            model = _user_model()
            self._exists = model._default_manager.filter(pk=self._pk).exists()
            if not self._exists:
                logger.warning(
                    "koherent: user %r does not exist; history rows are written without a "
                    "user (the id is kept in user_pk)",
                    self._pk,
                )
        if not self._exists:
            return None
        if self._placeholder is None:
            self._placeholder = _user_model()(pk=self._pk)
        return self._placeholder


class RequestUserRef:
    """The user of a request, read when first needed.

    ``request.user`` is read at that moment, so a user set by authentication running after the
    middleware (Django REST framework, a GraphQL view's own token check) is the one recorded.
    In async code an unevaluated lazy ``request.user`` cannot be resolved without a database
    query, so the async middleware resolves it first with ``await request.auser()``, and that
    result is used here.
    """

    __slots__ = ("_request",)

    def __init__(self, request: HttpRequest) -> None:
        self._request = request

    def __repr__(self) -> str:
        return "RequestUserRef()"

    def _user(self) -> Any:
        request = self._request
        user = getattr(request, "user", None)
        if not lazy_object_resolved(user):
            cached = cached_async_user(request)
            if cached is not None:
                user = cached
            elif in_event_loop():
                logger.debug("koherent: request.user not resolved yet in async code")
                return None
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        return user

    @property
    def pk(self) -> Any:
        user = self._user()
        return None if user is None else user.pk

    def for_history(self) -> Model | None:
        user = self._user()
        return None if user is None else user


def check_before_write(ref: UserRef | None) -> None:
    """Let ``ref`` refuse a write before anything is written: its ``before_write()`` hook,
    when it has one (a request's user checked late may not join the assignation it named)."""
    hook = getattr(ref, "before_write", None)
    if hook is not None:
        hook()


def user_ref_for(user: Any) -> UserRef | None:
    """Make a reference from what ``koherent.context(user=...)`` was given.

    Accepts a user instance (an anonymous user counts as no user), a primary key, or ``None``.
    Raises ``ValueError`` for anything else, or for an unsaved user.
    """
    if user is None:
        return None
    if isinstance(user, StaticUserRef | RequestUserRef):
        return user
    if hasattr(user, "is_authenticated") and not isinstance(user, str):
        if not user.is_authenticated:  # AnonymousUser
            return None
        if getattr(user, "pk", None) is None:
            raise ValueError("user must be saved before it can be put in an audit context")
        return StaticUserRef(user.pk, instance=user)
    return StaticUserRef(_normalise_pk(validate_user_pk(user)))
