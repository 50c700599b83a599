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

The lists of the project's own types (``history_field()``) are resolved by strawberry-django,
not by Koherent: :class:`~koherent.strawberry.KoherentExtension` registers the objects of every
value a field resolves to (a list, a query set, a relay connection) and the objects Django
loaded with them (prefetched relations, ``select_related``), so a nested list's objects are
known before the first of them asks for its history (:meth:`Loaders.register_objects`). A
registered key joins the next batch of its model, in sync and async execution alike.

The loaders live for one operation: :class:`~koherent.strawberry.KoherentExtension` makes a
fresh :class:`Loaders` for each and puts it in effect with a ``ContextVar`` (a loader shared by
operations would run one request's batch in another's context and serve stale values). Without
the extension each field gets a throw-away :class:`Loaders`: still correct, not batched.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from asgiref.sync import sync_to_async
from django.db.models import Model, QuerySet
from strawberry import relay
from strawberry.dataloader import DataLoader

from koherent import query
from koherent._registry import tracked_model
from koherent.loop import in_event_loop
from koherent.routing import record_database

if TYPE_CHECKING:
    from koherent.models import Assignation

K = TypeVar("K")
V = TypeVar("V")


class Batch(Generic[K, V]):
    """Answers keys with one call of ``batch_fn(keys) -> values`` (a sync function).

    :meth:`load` returns the value in sync execution and an awaitable in async execution.
    """

    def __init__(
        self,
        batch_fn: Callable[[list[K]], Sequence[V]],
        cache_key: Callable[[K], Hashable] = lambda key: key,
        group: Callable[[K], Hashable] | None = None,
    ) -> None:
        self._batch_fn = batch_fn
        self._cache_key = cache_key
        # Registered keys join a batch of keys of their group only (the histories of one
        # model: a batch for orders leaves the items' keys for the batch of items).
        self._group = group
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
        if in_event_loop():
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
            wanted = {cache_key: key}
            self._take_pending(wanted)
            values = self._call(list(wanted.values()))
            self._values.update(zip(wanted, values, strict=True))
            return self._values[cache_key]

    def _take_pending(self, wanted: dict[Hashable, K]) -> None:
        """Add the registered keys that may join a batch of ``wanted`` to it (lock held)."""
        if self._group is None:
            taken = list(self._pending)
        else:
            groups = {self._group(key) for key in wanted.values()}
            taken = [c for c, key in self._pending.items() if self._group(key) in groups]
        for cache_key in taken:
            wanted.setdefault(cache_key, self._pending.pop(cache_key))

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
            missing = {
                self._cache_key(key): key
                for key in keys
                if self._cache_key(key) not in self._values
            }
            if missing:
                # The registered keys join the batch: fields that resolve later (the items
                # of the next order of a list) then find their values ready.
                self._take_pending(missing)
                values = self._call(list(missing.values()))
                self._values.update(zip(missing, values, strict=True))
            return [self._values[self._cache_key(key)] for key in keys]


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

    found = Assignation.objects.using(record_database()).in_bulk(keys)
    return [found.get(key) for key in keys]


def _model_counts(keys: list[str]) -> list[dict[str, int]]:
    counts = query.model_counts(keys)
    return [counts[key] for key in keys]


def _change_counts(keys: list[str]) -> list[int]:
    counts = query.change_counts(keys)
    return [counts[key] for key in keys]


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
            self._object_histories, group=lambda key: key[0]
        )
        #: The tracked model's label of each model class met, ``None`` for untracked ones.
        self._labels: dict[type[Model], str | None] = {}
        #: The objects :meth:`register_objects` went through (kept alive: their ids are keys).
        self._seen: dict[int, Model] = {}

    def _object_histories(self, keys: list[tuple[str, Any]]) -> list[list[query.HistoryEntry]]:
        histories = query.object_histories(keys)
        # Their entries' changes and users will be asked for: all in the next batches.
        self.register_entries(entry for entries in histories for entry in entries)
        return histories

    def register_objects(self, value: Any, *, evaluate: bool | None = None) -> None:
        """Announce the tracked objects of a field's value, and those loaded with them.

        ``value`` is what a field resolved to: a model instance, a list or query set of them,
        or a relay connection. Besides these objects, the objects Django loaded with them
        (``prefetch_related``, ``select_related``, a ``Prefetch(to_attr=...)`` list) are
        announced too, however deep: in sync execution the fields of a nested list (the items
        of the next order) resolve only after the first one's history was asked for, so their
        keys must be known before. strawberry-django's optimizer loads nested lists this way.
        A query set not yet evaluated is evaluated when ``evaluate`` (by default: outside of
        an event loop, i.e. in sync execution, where graphql-core reads the field's list from
        it right after, from its cache), else left alone: async code cannot run a query.
        """
        stack = list(_objects_in(value, evaluate=evaluate))
        keys: list[tuple[str, Any]] = []
        while stack:
            obj = stack.pop()
            if id(obj) in self._seen or obj.pk is None:
                continue
            self._seen[id(obj)] = obj
            label = self._label_of(type(obj))
            if label is not None:
                keys.append((label, obj.pk))
            stack.extend(_loaded_with(obj))
        if keys:
            self.object_histories.register(keys)

    def _label_of(self, model: type[Model]) -> str | None:
        if model not in self._labels:
            try:
                self._labels[model] = tracked_model(model).label
            except LookupError:
                self._labels[model] = None
        return self._labels[model]

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


def _objects_in(value: Any, *, evaluate: bool | None) -> Iterator[Model]:
    """The model instances a field's value holds: itself, a list's or query set's items, a
    relay connection's nodes."""
    if isinstance(value, Model):
        yield value
        return
    if isinstance(value, relay.Connection):
        value = value.edges
    elif isinstance(value, QuerySet):
        if value._result_cache is None:
            if evaluate is None:
                evaluate = not in_event_loop()
            if not evaluate:
                return
            value._fetch_all()
        value = value._result_cache
    if not isinstance(value, list | tuple):
        return
    for item in value:
        if isinstance(item, relay.Edge):
            item = item.node
        if isinstance(item, Model):
            yield item


def _loaded_with(obj: Model) -> Iterator[Model]:
    """The objects Django loaded with ``obj``: its prefetched relations, its cached foreign
    keys (``select_related``) and its ``Prefetch(to_attr=...)`` lists. Never a query."""
    prefetched = getattr(obj, "_prefetched_objects_cache", None) or {}
    for related in prefetched.values():
        cached = getattr(related, "_result_cache", related)
        if isinstance(cached, list):
            yield from (o for o in cached if isinstance(o, Model))
    for related in obj._state.fields_cache.values():
        if isinstance(related, Model):
            yield related
    for attribute in vars(obj).values():
        if isinstance(attribute, list) and attribute and isinstance(attribute[0], Model):
            yield from (o for o in attribute if isinstance(o, Model))


_current_loaders: contextvars.ContextVar[Loaders | None] = contextvars.ContextVar(
    "koherent_graphql_loaders", default=None
)


def loaders_in_effect() -> Loaders | None:
    """The loaders of the operation running here, ``None`` outside of one."""
    return _current_loaders.get()


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
