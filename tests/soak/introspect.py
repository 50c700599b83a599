"""What a worker or server process holds: Koherent's caches and the audit contexts still alive.

Run inside the process under test (the ``kt.introspect`` task, the ``/aio/introspect/`` view).
Every cache Koherent keeps at module level is listed here with its bound; a cache added to
Koherent without being added here is not checked, so :data:`CACHES` names them all (the list
is held against the source by ``tests/soak/test_memory.py``).

Contexts are counted, not guessed: after a full garbage collection, every live
:class:`~koherent.context.AuditContext` is found among the objects the collector tracks
(``AuditContext`` has slots, not ``__weakref__``, so it cannot be weakly referenced; a slotted
object holding references is tracked by the collector).
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db import connections

#: A module-level place where the negative control leaks contexts on purpose.
LEAKED: list[Any] = []


def _lru(function: Any) -> tuple[int, int | None]:
    info = function.cache_info()
    return info.currsize, info.maxsize


def _caches() -> dict[str, Callable[[], tuple[int, int | None]]]:
    # By module path: some packages re-export a function under a module's name.
    modules = {
        name: importlib.import_module(f"koherent.{name}")
        for name in (
            "access",
            "_config",
            "query._page",
            "query._rows",
            "query._function",
            "records",
            "_registry",
            "resolvers",
            "signing",
            "http.hosts",
            "strawberry.extension",
            "strawberry.permissions",
            "django_tasks.audited",
        )
    }
    access, query, records = modules["access"], modules["query._rows"], modules["records"]
    config = modules["_config"]
    registry, resolvers, signing = modules["_registry"], modules["resolvers"], modules["signing"]
    hosts, permissions = modules["http.hosts"], modules["strawberry.permissions"]
    extension, audited = modules["strawberry.extension"], modules["django_tasks.audited"]

    lru = {
        "_config": config,
        "access": access,
        "resolvers": resolvers,
        "strawberry.permissions": permissions,
        "http.hosts": hosts,
        "query": query,  # the row loader's caches (koherent.query._rows)
        "query._page": modules["query._page"],
        "query._function": modules["query._function"],
        "signing": signing,
        "records": records,
    }
    found: dict[str, Callable[[], tuple[int, int | None]]] = {}
    for prefix, module in lru.items():
        for name, value in vars(module).items():
            if isinstance(value, functools._lru_cache_wrapper) and value.cache_info().maxsize:
                found[f"{prefix}.{name}"] = functools.partial(_lru, value)
    found["records._committed"] = lambda: (len(records._committed), records._CACHE_SIZE)
    function = modules["query._function"]  # per database and set of tracked models
    found["query._function._known"] = lambda: (len(function._known), function._KNOWN_KEPT)
    found["query._function._definitions"] = lambda: (
        len(function._definitions),
        function._DEFINITIONS_KEPT,
    )
    # What Koherent keeps on this thread's connections (they live as long as the thread):
    # about the current transaction at most, nothing per task or request served before.
    found["_django.connection_state"] = lambda: (
        sum(kept_on_connection(alias) for alias in connections),
        CONNECTION_STATE_KEPT,
    )
    found["signing._user_pks"] = lambda: (len(signing._user_pks), signing._USER_PKS_KEPT)
    # One entry per purpose (a fixed handful), per connection, per model class: bounded by
    # what the process has, not by its traffic.
    found["signing._signers"] = lambda: (len(signing._signers), 16)
    found["_registry._all"] = lambda: (registry._all.cache_info().currsize, 1)
    found["query._BUILDERS"] = lambda: (len(query._BUILDERS), 64)
    found["strawberry.extension._async_variants"] = lambda: (len(extension._async_variants), 64)
    found["django_tasks.audited._classes"] = lambda: (len(audited._classes), 64)
    # Built once per model class, or once per process (no argument): bounded by the models.
    model_count = len(apps.get_models(include_auto_created=True))
    found["records.model_key"] = lambda: (records.model_key.cache_info().currsize, model_count)
    legacy = importlib.import_module("koherent.legacy")
    found["legacy.provenance_entry_model"] = lambda: (
        legacy.provenance_entry_model.cache_info().currsize,
        1,
    )
    try:
        strawberry_legacy = importlib.import_module("koherent.strawberry.legacy")
    except ImportError:  # without the strawberry extra
        pass
    else:
        found["strawberry.legacy.provenance_entry_type"] = lambda: (
            strawberry_legacy.provenance_entry_type.cache_info().currsize,
            1,
        )
    return found


#: Entries Koherent may keep on a connection: a handful about its current transaction (the
#: soak tasks write one model under one assignation: two).
CONNECTION_STATE_KEPT = 16


def kept_on_connection(alias: str) -> int:
    """How many entries the containers Koherent keeps on this thread's connection ``alias``
    hold (its ``_koherent_*`` attributes, ``koherent._django.set_connection_state``), nested
    containers counted too."""

    def entries(value: object) -> int:
        if isinstance(value, dict | set | frozenset):
            return len(value)
        if isinstance(value, tuple | list):
            return sum(entries(item) for item in value)
        return 0

    kept = vars(connections[alias]).items()
    return sum(entries(value) for name, value in kept if name.startswith("_koherent_"))


def caches() -> dict[str, list[int | None]]:
    """``{name: [size, bound]}`` of every cache Koherent keeps at module level."""
    return {name: list(read()) for name, read in _caches().items()}


def live_contexts() -> int:
    """How many ``AuditContext`` objects are alive in this process, after a full collection."""
    from koherent.context import AuditContext

    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is AuditContext)


#: Under tracemalloc: the allocations of this process at its first :func:`snapshot`, and the
#: last comparison with them (``[baseline, (when, lines)]``), under ``_allocations_lock``.
_allocations: list[Any] = []
_allocations_lock = threading.Lock()
#: Calls this close together (the threads of one pool) share one comparison.
_SHARED_SECONDS = 30.0


def grown_allocations(limit: int = 15) -> list[str]:
    """Under tracemalloc (``PYTHONTRACEMALLOC``), the ``limit`` source lines whose live
    allocations grew most since this process's first call, as ``"<size> <blocks> <line>"``;
    empty on the first call or without tracemalloc. Names what a process keeps per task."""
    if not tracemalloc.is_tracing():
        return []
    with _allocations_lock:
        if len(_allocations) == 2 and time.monotonic() - _allocations[1][0] < _SHARED_SECONDS:
            return list(_allocations[1][1])
        gc.collect()
        current = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        if not _allocations:
            _allocations.append(current)
            lines: list[str] = []
        else:
            lines = [
                f"{stat.size_diff:+,} B {stat.count_diff:+,} blocks {stat.traceback}"
                for stat in current.compare_to(_allocations[0], "lineno")[:limit]
            ]
        _allocations[1:] = [(time.monotonic(), lines)]
        return lines


def snapshot() -> dict[str, Any]:
    """Everything the memory scenario reads from a process."""
    return {
        "pid": os.getpid(),
        "caches": caches(),
        "live_contexts": live_contexts(),
        "grown_allocations": grown_allocations(),
    }


def leak() -> None:
    """Keep the current context past its task or request (the negative control)."""
    from koherent.context import _current

    LEAKED.append(_current.get())
