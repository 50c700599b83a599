"""The GraphQL schema Koherent ships, pinned: a change to its types shows up as a diff here.

``tests/graphql/schema.graphql`` is the printed schema of the test schema
(``tests/graphql/schema.py``), which uses every Koherent type, query field and mutation. When a
change to the schema is intended, rewrite the file and review its diff::

    KOHERENT_UPDATE_SNAPSHOTS=1 make test-fast ARGS="tests/graphql/test_schema_snapshot.py"
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from tests.graphql.schema import schema

SNAPSHOT = Path(__file__).with_name("schema.graphql")
UPDATE = "KOHERENT_UPDATE_SNAPSHOTS"


def printed() -> str:
    return schema.as_str().rstrip("\n") + "\n"


def test_the_schema_matches_its_snapshot() -> None:
    current = printed()
    if os.environ.get(UPDATE) == "1":
        SNAPSHOT.write_text(current, encoding="utf-8")
    pinned = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            pinned.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile=str(SNAPSHOT.name),
            tofile="the schema now",
        )
    )
    assert not diff, (
        f"The GraphQL schema changed. If the change is intended, rewrite the snapshot with "
        f"{UPDATE}=1 (see this module's docstring) and commit it with the change.\n{diff}"
    )


def test_the_snapshot_pins_koherent_types() -> None:
    """The snapshot holds Koherent's own types, not only the test app's."""
    pinned = SNAPSHOT.read_text(encoding="utf-8")
    for name in ("type HistoryEntry", "revertAssignation(", "assignation(id: ID!)"):
        assert name in pinned, name
