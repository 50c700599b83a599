"""An assignation's history in order: :func:`history_for_assignation` and :func:`load_entries`.

:class:`AssignationHistory` reads the rows of one assignation across every tracked model it
touched, page by page with cursors (:mod:`koherent.query._page`), and counts them per model
(:func:`koherent.query.counts.model_counts`'s query).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.db import router

from koherent._registry import TrackedModel, tracked_model, tracked_models
from koherent.query import _function
from koherent.query._cursor import _Cursor, _decode_cursor
from koherent.query._page import _first_page, _page_keys
from koherent.query._rows import _load_rows
from koherent.query._sql import _normalise_id
from koherent.query.counts import count_rows
from koherent.query.entries import HistoryEntry, HistoryPage
from koherent.routing import history_database

if TYPE_CHECKING:
    from django.db.models import Model

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_PAGE_SIZE",
    "AssignationHistory",
    "history_for_assignation",
    "load_entries",
]

#: Default number of rows per page of :meth:`AssignationHistory.page`.
DEFAULT_PAGE_SIZE = 100
#: Rows fetched per round of iteration over :class:`AssignationHistory`.
DEFAULT_BATCH_SIZE = 500


class AssignationHistory:
    """Every history row written under one assignation, of every tracked model.

    Made by :func:`history_for_assignation`. Lazy and re-iterable; nothing is fetched until
    it is iterated or paged::

        history = koherent.history_for_assignation(assignation_id)
        for entry in history:          # HistoryEntry values, in order
            entry.model_label, entry.kind, entry.row
        for row in history.rows():     # the history rows themselves (simple-history models)
            ...
        page = history.page(first=50)  # one page; then history.page(50, after=page.end_cursor)
        history.count(), history.counts()
    """

    def __init__(
        self, assignation_id: str, *, using: str | None = None, batch_size: int | None = None
    ) -> None:
        self.assignation_id = assignation_id
        self.using = using or history_database(assignation_id)
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    def __repr__(self) -> str:
        return f"<AssignationHistory {self.assignation_id!r} on {self.using!r}>"

    def _tracked(self) -> tuple[TrackedModel, ...]:
        """The tracked models whose tables may hold rows of the assignation.

        Those on its record's list of touched models (one query by primary key, see
        :mod:`koherent.records`); every tracked model when the list is not known (no record,
        a record older than the list, rows written by raw SQL).
        """
        from koherent.records import touched_models

        tracked = tracked_models(self.using)
        touched = touched_models(self.assignation_id, self.using)
        if touched is None:
            return tracked
        return tuple(t for t in tracked if t.label in touched)

    def page(self, first: int = DEFAULT_PAGE_SIZE, after: str | None = None) -> HistoryPage:
        """Up to ``first`` rows after the cursor ``after`` (from the start without one).

        After one lookup of the tables the assignation touched: one query for the first
        page, two for a later one, whatever ``first`` and the depth
        of the page. Raises
        :class:`InvalidCursor` for a cursor this module did not make.
        """
        if first < 1:
            raise ValueError("first must be at least 1")
        cursor = _decode_cursor(after) if after is not None else None
        return self._page(first, cursor)

    def _first_page_in_one(self, first: int) -> HistoryPage | None:
        """The first page in one query, through the database's history function
        (:mod:`koherent.query._function`); ``None`` where there is none."""
        found = _function.reader(self.using)
        if found is None:
            return None
        rows = _function.first_page(self.using, found, self.assignation_id, first + 1)
        if rows is None:
            return None
        return HistoryPage(rows=tuple(rows[:first]), has_next=len(rows) > first)

    def _page(
        self, first: int, cursor: _Cursor | None, tracked: tuple[TrackedModel, ...] | None = None
    ) -> HistoryPage:
        if cursor is None and tracked is None:
            page = self._first_page_in_one(first)
            if page is not None:
                return page
        if tracked is None:
            tracked = self._tracked()
        if not tracked:
            return HistoryPage(rows=(), has_next=False)
        if cursor is None:
            found = _first_page(self.using, tracked, self.assignation_id, first + 1)
            if found is not None:
                return HistoryPage(rows=tuple(found[:first]), has_next=len(found) > first)
        keys = _page_keys(self.using, tracked, self.assignation_id, cursor, first + 1)
        has_next = len(keys) > first
        keys = keys[:first]
        if not keys:
            return HistoryPage(rows=(), has_next=False)
        loaded = _load_rows(self.using, keys)
        rows = tuple(loaded[(t.label, hid)] for t, hid in keys if (t.label, hid) in loaded)
        return HistoryPage(rows=rows, has_next=has_next)

    def pages(self, size: int | None = None) -> Iterator[HistoryPage]:
        """Every page in order, ``size`` rows each (the batch size by default)."""
        size = size or self.batch_size
        cursor: _Cursor | None = None
        tracked: tuple[TrackedModel, ...] | None = None
        page = self._first_page_in_one(size)
        if page is None:
            tracked = self._tracked()
            page = self._page(size, None, tracked)
        while True:
            if page.rows:
                yield page
            if not page.has_next or not page.rows:
                return
            if tracked is None:  # the tables of the later pages (read once)
                tracked = self._tracked()
            last = page.rows[-1]
            cursor = _Cursor(
                date=last.history_date,  # type: ignore[attr-defined]
                label=tracked_model(type(last)).label,
                history_id=last.pk,
            )
            page = self._page(size, cursor, tracked)

    def __iter__(self) -> Iterator[HistoryEntry]:
        """Every row as a :class:`HistoryEntry`, in order (the same as :meth:`entries`)."""
        return self.entries()

    def rows(self) -> Iterator[Model]:
        """Every history row itself (a simple-history model instance), in order."""
        for page in self.pages():
            yield from page.rows

    def entries(self) -> Iterator[HistoryEntry]:
        """Every row as a :class:`HistoryEntry`, in order."""
        for page in self.pages():
            yield from page.entries

    def counts(self) -> dict[str, int]:
        """The number of rows per tracked model label, for the models with rows (two queries:
        the touched tables, then the counts)."""
        return count_rows(self.using, self._tracked(), [self.assignation_id])[self.assignation_id]

    def count(self) -> int:
        """The number of rows (two queries)."""
        return sum(self.counts().values())

    def exists(self) -> bool:
        """Whether the assignation wrote any history row."""
        return bool(self.page(first=1).rows)

    def models(self) -> list[TrackedModel]:
        """The tracked models the assignation wrote history for (two queries)."""
        tracked = self._tracked()
        counts = count_rows(self.using, tracked, [self.assignation_id])[self.assignation_id]
        return [t for t in tracked if t.label in counts]


def history_for_assignation(
    assignation_id: str, *, using: str | None = None, batch_size: int | None = None
) -> AssignationHistory:
    """Every history row of every tracked model written under ``assignation_id``.

    Returns a lazy :class:`AssignationHistory`: iterate it for the :class:`HistoryEntry` of
    each row in order (``history_date``, then model label, then ``history_id``; ``.rows()``
    gives the history rows themselves), fetched ``batch_size`` rows
    (default 500) at a time, after one lookup of the tables the assignation touched: one
    query for the first batch and two for each later one; or
    take :meth:`~AssignationHistory.page`\\ s with cursors. ``using`` names the database;
    without it, the one the database router reads the assignation's history from (see
    :mod:`koherent.routing`).
    """
    return AssignationHistory(assignation_id, using=using, batch_size=batch_size)


def load_entries(
    keys: Sequence[tuple[str, Any]], *, using: str | None = None
) -> list[HistoryEntry | None]:
    """The entries of ``(model_label, history_id)`` keys, in the order given.

    ``None`` for a key that names no row (or no tracked model). One query for all the keys
    (a ``UNION ALL`` over their models): a DataLoader's batch function.
    """
    resolved: list[tuple[TrackedModel, Any] | None] = []
    for label, history_id in keys:
        try:
            t = tracked_model(label)
            resolved.append((t, _normalise_id(t, history_id)))
        except Exception:  # an unknown label or an id of the wrong form: no row
            resolved.append(None)
    wanted = [key for key in resolved if key is not None]
    by_db: dict[str, list[tuple[TrackedModel, Any]]] = defaultdict(list)
    for t, hid in wanted:  # each model's rows from the database the router reads it from
        by_db[using or str(router.db_for_read(t.history_model))].append((t, hid))
    loaded = {
        found: row for db, part in by_db.items() for found, row in _load_rows(db, part).items()
    }
    result: list[HistoryEntry | None] = []
    for key in resolved:
        row = None if key is None else loaded.get((key[0].label, key[1]))
        result.append(None if row is None or key is None else HistoryEntry._build(key[0], row))
    return result
