"""GraphQL types of the audit trail: history entries, their changes, assignations.

The types are plain strawberry types built from :mod:`koherent.query`'s values; their related
fields (an entry's changes and user, an assignation's user, parent and counts) go through the
operation's batch loaders (:mod:`koherent.strawberry.loaders`), so a list costs a constant
number of queries whatever its length.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import strawberry
from asgiref.sync import sync_to_async
from strawberry.scalars import JSON  # noqa: TC002 (strawberry reads annotations at run time)

from koherent import query
from koherent.loop import in_event_loop
from koherent.models import Assignation as AssignationRecord  # noqa: TC001 (read at run time)
from koherent.strawberry._renamed import RENAMED, renamed
from koherent.strawberry.loaders import current_loaders
from koherent.strawberry.permissions import arequire_read, require_read

if TYPE_CHECKING:
    from django.db.models import Model

F = TypeVar("F", bound="Callable[..., Any]")


def described(description: str) -> Callable[[F], F]:
    """``@strawberry.field(description=...)``, typed for mypy (strawberry's returns ``Any``)."""
    return cast("Callable[[F], F]", strawberry.field(description=description))


#: The most entries one page may hold.
MAX_PAGE_SIZE = 500

# Registers the enum with strawberry (under the same class), so fields can return it.
strawberry.enum(query.ChangeKind, name="ChangeKind", description="What a change did.")


def optional(description: str) -> Any:
    """An input field that may be left out (``None``), described."""
    return strawberry.field(default=None, description=description)


def run_db(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` (which queries the database) now, or in Django's sync thread when async."""
    if in_event_loop():
        return sync_to_async(fn)(*args)
    return fn(*args)


def jsonable(value: Any) -> Any:
    """A field value as JSON: dates in ISO 8601, decimals and UUIDs as strings."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


@strawberry.type(
    name="FieldChange", description="One field of one change: its value before and after."
)
class FieldChangeType:
    field: str
    old_value: JSON | None = strawberry.field(description="`null` on a creation.")
    new_value: JSON | None = strawberry.field(description="`null` on a deletion.")

    @classmethod
    def of(cls, change: query.FieldChange) -> FieldChangeType:
        return cls(
            field=change.field, old_value=jsonable(change.old), new_value=jsonable(change.new)
        )


@strawberry.type(description="The user who made a change.")
class HistoryUser:
    id: strawberry.ID
    username: str
    display_name: str

    @classmethod
    def of(cls, user: Model | None) -> HistoryUser | None:
        if user is None:
            return None
        get_username = getattr(user, "get_username", None)
        username = get_username() if callable(get_username) else str(user.pk)
        return cls(id=strawberry.ID(str(user.pk)), username=username, display_name=str(user))


def _user(user_pk: str | None) -> Any:
    if user_pk is None:
        return None
    value = current_loaders().users.load(user_pk)
    if in_event_loop():

        async def wrap() -> HistoryUser | None:
            return HistoryUser.of(await value)

        return wrap()
    return HistoryUser.of(value)


@strawberry.type(
    name="HistoryEntry", description="One change of one tracked object: a history row."
)
class HistoryEntryType:
    entry: strawberry.Private[query.HistoryEntry]

    @described("`app_label.ModelName:historyId`, unique.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(f"{self.entry.model_label}:{self.entry.history_id}")

    @strawberry.field
    def kind(self) -> query.ChangeKind:
        return self.entry.kind

    @strawberry.field
    def date(self) -> dt.datetime:
        return self.entry.date

    @described("The primary key of the user who made the change.")
    def user_id(self) -> strawberry.ID | None:
        user_id = self.entry.user_id
        return None if user_id is None else strawberry.ID(user_id)

    @described("The user who made the change (`null` once deleted).")
    def user(self) -> HistoryUser | None:
        return _user(self.entry.user_id)  # type: ignore[no-any-return]

    @strawberry.field
    def app(self) -> str | None:
        return self.entry.app

    @strawberry.field
    def assignation_id(self) -> str | None:
        return self.entry.assignation_id

    @described("The Celery task that made the change, if one did.")
    def task_id(self) -> str | None:
        return self.entry.task_id

    @described("`app_label.ModelName` of the changed object.")
    def model_label(self) -> str:
        return self.entry.model_label

    @described("The primary key of the changed object.")
    def object_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.entry.object_id))

    @described("The history row's primary key.")
    def history_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.entry.history_id))

    @described("Pass as `after` to list the changes after this one.")
    def cursor(self) -> str:
        return self.entry.cursor

    @described(
        "The fields this change set: all of them on a creation or deletion, "
        "the ones that differ from the previous change on an update."
    )
    def changes(self) -> list[FieldChangeType]:
        value = current_loaders().changes.load(self.entry)
        if in_event_loop():

            async def wrap() -> list[FieldChangeType]:
                return [FieldChangeType.of(c) for c in await value]

            return wrap()  # type: ignore[return-value]
        return [FieldChangeType.of(c) for c in value]

    @classmethod
    def list_of(cls, entries: list[query.HistoryEntry]) -> list[HistoryEntryType]:
        """GraphQL entries of ``entries``, announced to the loaders."""
        current_loaders().register_entries(entries)
        return [cls(entry=entry) for entry in entries]


@strawberry.type(description="A page of history entries, oldest first.")
class HistoryEntryPage:
    entries: list[HistoryEntryType]
    has_next_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="How many changes an assignation made to one tracked model.")
class ModelChanges:
    model_label: str
    count: int


@strawberry.type(
    name="Assignation",
    description="One logical operation: a request, a task, a script, a revert.",
)
class AssignationType:
    record: strawberry.Private[AssignationRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.record.pk)

    @strawberry.field
    def user_id(self) -> strawberry.ID | None:
        user_pk = self.record.user_pk
        return None if user_pk is None else strawberry.ID(user_pk)

    @strawberry.field
    def user(self) -> HistoryUser | None:
        return _user(self.record.user_pk)  # type: ignore[no-any-return]

    @strawberry.field
    def app(self) -> str | None:
        return self.record.app

    @described("What opened it: request, graphql, celery, manual, revert...")
    def origin(self) -> str:
        return self.record.origin

    @strawberry.field
    def created(self) -> dt.datetime:
        return self.record.created

    @strawberry.field
    def task_id(self) -> str | None:
        return self.record.task_id

    @strawberry.field
    def parent_id(self) -> strawberry.ID | None:
        parent_id = self.record.parent_id
        return None if parent_id is None else strawberry.ID(parent_id)

    @described("The assignation this one was opened under (the read permission asked for it).")
    def parent(self, info: strawberry.Info) -> AssignationType | None:
        parent_id = self.record.parent_id
        if parent_id is None:
            return None
        if in_event_loop():
            value = current_loaders().assignations.load(parent_id)

            async def wrap() -> AssignationType | None:
                await arequire_read(info, parent_id)
                return AssignationType.of(await value)

            return wrap()  # type: ignore[return-value]
        require_read(info, parent_id)
        return AssignationType.of(current_loaders().assignations.load(parent_id))

    @described("The number of changes, across all tracked models.")
    def change_count(self) -> int:
        return current_loaders().change_counts.load(self.record.pk)  # type: ignore[no-any-return]

    @described("The tracked models it changed, and how many changes each.")
    def models(self) -> list[ModelChanges]:
        value = current_loaders().model_counts.load(self.record.pk)
        if in_event_loop():

            async def wrap() -> list[ModelChanges]:
                return _model_changes(await value)

            return wrap()  # type: ignore[return-value]
        return _model_changes(value)

    @described(
        "Its changes across all tracked models, oldest first, "
        f"`first` at a time (at most {MAX_PAGE_SIZE}), after the cursor `after`."
    )
    def changes(
        self, info: strawberry.Info, first: int = 100, after: str | None = None
    ) -> HistoryEntryPage:
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise ValueError(f"first must be between 1 and {MAX_PAGE_SIZE}, not {first}")
        assignation_id = self.record.pk

        def fetch() -> HistoryEntryPage:
            require_read(info, assignation_id)
            try:
                page = query.history_for_assignation(assignation_id).page(first, after=after)
            except query.InvalidCursor as exc:
                raise ValueError(str(exc)) from None
            return HistoryEntryPage(
                entries=HistoryEntryType.list_of(page.entries),
                has_next_page=page.has_next,
                start_cursor=page.start_cursor,
                end_cursor=page.end_cursor,
            )

        return run_db(fetch)  # type: ignore[no-any-return]

    @classmethod
    def of(cls, record: AssignationRecord | None) -> AssignationType | None:
        return None if record is None else cls(record=record)

    @classmethod
    def list_of(cls, records: list[AssignationRecord]) -> list[AssignationType]:
        """GraphQL assignations of ``records``, announced to the loaders."""
        current_loaders().register_assignations(records)
        return [cls(record=record) for record in records]


def readable_assignation(info: strawberry.Info, assignation_id: str) -> AssignationType | None:
    """The assignation ``assignation_id`` (:func:`koherent.query.get_assignation`: its
    record, or a stand-in for history without one; ``None`` for neither) once the read
    permission allows it (an awaitable in async execution)."""

    def fetch() -> AssignationType | None:
        require_read(info, assignation_id)
        return AssignationType.of(query.get_assignation(assignation_id))

    return run_db(fetch)  # type: ignore[no-any-return]


def _model_changes(counts: dict[str, int]) -> list[ModelChanges]:
    return [ModelChanges(model_label=label, count=n) for label, n in sorted(counts.items())]


def __getattr__(name: str) -> Any:
    # The former names of the types (Assignation, FieldChange, HistoryEntry), and koherent
    # 0.2's ProvenanceEntry, HistoryKind and ModelChange, with a DeprecationWarning.
    if name in RENAMED and RENAMED[name][0] == __name__:
        return renamed(__name__, name)
    from koherent import legacy

    return legacy.resolve(__name__, name)
