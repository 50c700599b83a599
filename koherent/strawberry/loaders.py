"""Per-operation batch loaders: effective changes, users, assignation records and counts.

Listing 100 history entries with their changes and users must not cost 200 queries. Each
loader takes the keys of many fields and answers them with one call of a batch function that
runs a constant number of queries (:func:`koherent.query.effective_changes`, one
``pk__in`` query for users, ...):

* in async execution, through a strawberry ``DataLoader``: the fields of a list resolve
  together, their ``load()`` calls land in one batch;
* in sync execution (``GraphQLView``, ``execute_sync``), where no ``DataLoader`` can run, the
  resolver of a list *registers* the keys its items will ask for (:meth:`Batch.register`), and
  the first item's field computes them all at once.

The loaders live for one operation: :class:`~koherent.strawberry.KoherentExtension` makes a
fresh :class:`Loaders` for each and puts it in effect with a ``ContextVar`` (a loader shared by
operations would run one request's batch in another's context and serve stale values). Without
the extension each field gets a throw-away :class:`Loaders`: still correct, not batched.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from asgiref.sync import sync_to_async
from strawberry.dataloader import DataLoader

from koherent import query

if TYPE_CHECKING:
    from django.db.models import Model

    from koherent.models import Assignation

K = TypeVar("K")
V = TypeVar("V")


def in_async_execution() -> bool:
    """Whether this code runs on an event loop (an async operation's resolver)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Batch(Generic[K, V]):
    """Answers keys with one call of ``batch_fn(keys) -> values`` (a sync function).

    :meth:`load` returns the value in sync execution and an awaitable in async execution.
    """

    def __init__(
        self,
        batch_fn: Callable[[list[K]], Sequence[V]],
        cache_key: Callable[[K], Hashable] = lambda key: key,
    ) -> None:
        self._batch_fn = batch_fn
        self._cache_key = cache_key
        self._values: dict[Hashable, V] = {}
        self._pending: dict[Hashable, K] = {}
        self._lock = threading.Lock()
        self._loader: DataLoader[K, V] | None = None
        self.calls = 0

    def register(self, keys: Iterable[K]) -> None:
        """Announce keys that fields will ask for, so that the first asks for them all."""
        with self._lock:
            for key in keys:
                cache_key = self._cache_key(key)
                if cache_key not in self._values:
                    self._pending[cache_key] = key

    def prime(self, key: K, value: V) -> None:
        """Give the value of ``key``, known already (no batch asks for it then)."""
        with self._lock:
            cache_key = self._cache_key(key)
            self._values[cache_key] = value
            self._pending.pop(cache_key, None)

    def load(self, key: K) -> Any:
        """The value of ``key`` (sync execution) or an awaitable of it (async execution)."""
        if in_async_execution():
            cache_key = self._cache_key(key)
            if cache_key in self._values:
                return _ready(self._values[cache_key])
            return self._data_loader().load(key)
        return self.load_sync(key)

    def load_sync(self, key: K) -> V:
        cache_key = self._cache_key(key)
        with self._lock:
            if cache_key in self._values:
                return self._values[cache_key]
            wanted = dict(self._pending)
            wanted[cache_key] = key
            self._pending.clear()
            values = self._call(list(wanted.values()))
            self._values.update(zip(wanted, values, strict=True))
            return self._values[cache_key]

    def _call(self, keys: list[K]) -> Sequence[V]:
        self.calls += 1
        values = self._batch_fn(keys)
        if len(values) != len(keys):  # pragma: no cover - a batch function's bug
            raise RuntimeError(f"{self._batch_fn!r} returned {len(values)} values for {len(keys)}")
        return values

    def _data_loader(self) -> DataLoader[K, V]:
        if self._loader is None:
            run = sync_to_async(self._call_and_keep)

            async def load_many(keys: list[K]) -> Sequence[V]:
                return await run(keys)

            self._loader = DataLoader(load_fn=load_many, cache_key_fn=self._cache_key)
        return self._loader

    def _call_and_keep(self, keys: list[K]) -> Sequence[V]:
        with self._lock:
            known = [self._cache_key(key) in self._values for key in keys]
            missing = [key for key, hit in zip(keys, known, strict=True) if not hit]
            fetched = iter(self._call(missing) if missing else ())
            result: list[V] = []
            for key, hit in zip(keys, known, strict=True):
                cache_key = self._cache_key(key)
                if not hit:
                    self._values[cache_key] = next(fetched)
                    self._pending.pop(cache_key, None)
                result.append(self._values[cache_key])
            return result


async def _ready(value: V) -> V:
    return value


def _load_users(keys: list[str]) -> list[Model | None]:
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError

    model = get_user_model()
    pk_field = model._meta.pk
    assert pk_field is not None
    by_key: dict[str, Any] = {}
    for key in keys:
        try:
            by_key[key] = pk_field.to_python(key)
        except (ValidationError, TypeError, ValueError):
            continue
    found = {
        str(user.pk): user for user in model._default_manager.filter(pk__in=list(by_key.values()))
    }
    return [found.get(key) for key in keys]


def _load_assignations(keys: list[str]) -> list[Assignation | None]:
    from koherent.models import Assignation

    found = Assignation.objects.in_bulk(keys)
    return [found.get(key) for key in keys]


def _model_counts(keys: list[str]) -> list[dict[str, int]]:
    """Per assignation, its number of history rows per tracked model: one ``UNION ALL`` of a
    grouped count per history table (split only past the database's limits)."""
    from django.db import connection
    from django.db.models import CharField, Count, Value

    from koherent.registry import tracked_models

    counts: dict[str, dict[str, int]] = {key: {} for key in keys}
    tracked = tracked_models()
    if not keys or not tracked:
        return [counts[key] for key in keys]
    limit = connection.features.max_query_params
    per_query = _MODELS_PER_QUERY if limit is None else max(1, limit // len(keys))
    for start in range(0, len(tracked), min(per_query, _MODELS_PER_QUERY)):
        chunk = tracked[start : start + min(per_query, _MODELS_PER_QUERY)]
        parts = [
            t.history_model._default_manager.filter(assignation_id__in=keys)
            .order_by()
            .values("assignation_id")
            .annotate(
                koherent_label=Value(t.label, output_field=CharField()), koherent_n=Count("pk")
            )
            .values_list("assignation_id", "koherent_label", "koherent_n")
            for t in chunk
        ]
        for assignation_id, label, n in parts[0].union(*parts[1:], all=True):
            counts[assignation_id][label] = n
    return [counts[key] for key in keys]


#: History tables per ``UNION ALL`` (SQLite allows 500 compound terms).
_MODELS_PER_QUERY = 200


class Loaders:
    """The batch loaders of one operation."""

    def __init__(self) -> None:
        self.changes: Batch[query.HistoryEntry, list[query.FieldChange]] = Batch(
            query.effective_changes, cache_key=lambda entry: entry.key
        )
        self.users: Batch[str, Model | None] = Batch(_load_users)
        self.assignations: Batch[str, Assignation | None] = Batch(_load_assignations)
        self.change_counts: Batch[str, int] = Batch(_change_counts)
        self.model_counts: Batch[str, dict[str, int]] = Batch(_model_counts)
        #: Permission decisions of the operation, by (setting, assignation id).
        self.permissions: dict[tuple[str, str | None], bool] = {}
        self.object_histories: Batch[tuple[str, Any], list[query.HistoryEntry]] = Batch(
            _object_histories
        )

    def register_entries(self, entries: Iterable[query.HistoryEntry]) -> None:
        """Announce the entries of a list: their changes and users will be asked for."""
        entries = list(entries)
        self.changes.register(entries)
        self.users.register(e.user_id for e in entries if e.user_id is not None)

    def register_assignations(self, records: Iterable[Assignation]) -> None:
        """Announce the assignations of a list: their users, parents and counts."""
        records = list(records)
        self.users.register(r.user_pk for r in records if r.user_pk is not None)
        self.assignations.register(r.parent_id for r in records if r.parent_id is not None)
        self.change_counts.register(r.pk for r in records)
        self.model_counts.register(r.pk for r in records)


def _object_histories(keys: list[tuple[str, Any]]) -> list[list[query.HistoryEntry]]:
    from koherent.strawberry.fields import load_object_histories

    return load_object_histories(keys)


def _change_counts(keys: list[str]) -> list[int]:
    counts = query.change_counts(keys)
    return [counts.get(key, 0) for key in keys]


_current_loaders: contextvars.ContextVar[Loaders | None] = contextvars.ContextVar(
    "koherent_graphql_loaders", default=None
)


def current_loaders() -> Loaders:
    """The loaders of the operation running here (a throw-away set outside of one)."""
    loaders = _current_loaders.get()
    return Loaders() if loaders is None else loaders


def open_loaders() -> contextvars.Token[Loaders | None]:
    """Put a fresh set of loaders in effect (for the extension, per operation)."""
    return _current_loaders.set(Loaders())


def close_loaders(token: contextvars.Token[Loaders | None]) -> None:
    """Restore the loaders in effect before :func:`open_loaders` (tolerant, like contexts)."""
    try:
        _current_loaders.reset(token)
    except (ValueError, RuntimeError):
        previous = token.old_value
        _current_loaders.set(None if previous is contextvars.Token.MISSING else previous)
