"""The sizes of every scenario: ``full`` (published numbers) and ``tiny`` (the CI smoke run)."""

from __future__ import annotations

import json
import os
from typing import Any

SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        # 2,000 requests (a fresh context and one save each) per contender, mode, repetition.
        "request": {"requests": 2_000, "chunk": 200, "repetitions": 3},
        # 10,000 saves per contender and mode per repetition, timed in chunks of 1,000.
        "write": {"saves": 10_000, "chunk": 1_000, "repetitions": 3},
        "bulk": {"rows": 10_000, "repetitions": 7},
        "update": {"rows": 10_000, "repetitions": 5},
        "propagation": {"tasks": 5_000, "repetitions": 3, "hook_calls": 20_000, "hook_rounds": 9},
        "query": {
            "rows": 1_000_000,
            "models": 10,
            "changes_per_assignation": 100,
            "lookups": 200,
            "repetitions": 9,
        },
        # The query scenario's data set (the same sizes, so it is built once).
        "query_wide": {
            "rows": 1_000_000,
            "models": 10,
            "changes_per_assignation": 100,
            "lookups": 200,
        },
        "undo": {"objects": 1_000, "changes": 10_000, "repetitions": 5},
        "graphql": {"entries": 100, "repetitions": 30},
        "capture": {
            "saves": 2_000,
            "chunk": 200,
            "repetitions": 3,
            "rows": 10_000,
            "bulk_repetitions": 5,
            "statements": 2_000,
        },
    },
    "tiny": {
        "request": {"requests": 20, "chunk": 10, "repetitions": 1},
        "write": {"saves": 40, "chunk": 20, "repetitions": 1},
        "bulk": {"rows": 50, "repetitions": 2},
        "update": {"rows": 50, "repetitions": 2},
        "propagation": {"tasks": 20, "repetitions": 1, "hook_calls": 200, "hook_rounds": 2},
        "query": {
            "rows": 2_000,
            "models": 10,
            "changes_per_assignation": 20,
            "lookups": 5,
            "repetitions": 2,
        },
        "query_wide": {"rows": 2_000, "models": 10, "changes_per_assignation": 20, "lookups": 5},
        "undo": {"objects": 20, "changes": 100, "repetitions": 2},
        "graphql": {"entries": 10, "repetitions": 2},
        "capture": {
            "saves": 20,
            "chunk": 10,
            "repetitions": 1,
            "rows": 50,
            "bulk_repetitions": 2,
            "statements": 20,
        },
    },
}


def size_of(scenario: str, size: str) -> dict[str, Any]:
    """The sizes of ``scenario``, with the runner's ``--set`` overrides applied."""
    try:
        values = dict(SIZES[size][scenario])
    except KeyError:
        raise ValueError(f"no size {size!r} for scenario {scenario!r}") from None
    overrides = json.loads(os.environ.get("KOHERENT_BENCH_OVERRIDES") or "{}")
    values.update(overrides.get(scenario, {}))
    return values
