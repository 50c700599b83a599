"""Page cursors: an entry's position in an assignation's history, as an opaque string (internal).

A cursor is the ``(history_date, model label, history_id)`` of a row, in URL-safe base64 JSON:
the order :func:`~koherent.query.history_for_assignation` gives rows in.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from koherent._registry import tracked_model
from koherent.exceptions import KoherentError

if TYPE_CHECKING:
    from django.db.models import Model


class InvalidCursor(KoherentError, ValueError):
    """A page cursor that :func:`history_for_assignation` did not make, or a damaged one."""


@dataclass(frozen=True, slots=True)
class _Cursor:
    date: dt.datetime
    label: str
    history_id: Any


def _encode_cursor(date: dt.datetime, label: str, history_id: Any) -> str:
    raw = json.dumps([date.isoformat(), label, str(history_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_of(row: Model) -> str:
    tracked = tracked_model(type(row))
    return _encode_cursor(row.history_date, tracked.label, row.pk)  # type: ignore[attr-defined]


def _decode_cursor(value: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        date_text, label, history_id = json.loads(raw)
        date = dt.datetime.fromisoformat(date_text)
        tracked = tracked_model(label)
        pk = tracked.history_model._meta.pk
        assert pk is not None
        return _Cursor(date=date, label=tracked.label, history_id=pk.to_python(history_id))
    except Exception as exc:  # bad base64 or JSON, an unknown model, a malformed id...
        raise InvalidCursor(f"not a history cursor: {value!r}") from exc
