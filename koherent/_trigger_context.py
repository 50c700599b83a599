"""The text form of the audit context the capture triggers read (no Django, no pgtrigger).

:mod:`koherent._handoff` writes it with each writing statement, :mod:`koherent._triggers`
compiles the PL/pgSQL that reads it back: one text,
``1|<assignation>|<app>|<task>|<user>|<user key>|<origin>|<parent>|<table:key>|<reason>|<skip>``,
sent in a comment the statement starts with (:data:`COMMENT_MARK`) or, for a statement longer
than :data:`COMMENT_LIMIT`, in the :data:`CONTEXT_SETTING` setting.
"""

from __future__ import annotations

__all__ = [
    "COMMENT_LIMIT",
    "COMMENT_MARK",
    "CONTEXT_SETTING",
    "ESCAPE",
    "ESCAPES",
    "FORMAT_VERSION",
    "SETTING_NAMES",
    "encode",
]

#: The per-value settings a session outside Django may set (the triggers read them when a
#: statement brings no context), in the order of the fields of :func:`encode`.
SETTING_NAMES: tuple[str, ...] = (
    "koherent.assignation_id",
    "koherent.app",
    "koherent.task_id",
    "koherent.user_id",
    "koherent.user_pk",
    "koherent.record",
    "koherent.parent",
    "koherent.row",
    "koherent.reason",
    "koherent.skip",
)

#: The setting that carries the encoded context of a long statement or an ``executemany``.
CONTEXT_SETTING = "koherent.context"
#: How the comment that carries the context starts (the version of the encoding after it).
COMMENT_MARK = "/*koherent:"
#: The version of :func:`encode`'s format, its first field.
FORMAT_VERSION = "1"
#: Statements longer than this (in characters) get the setting rather than the comment: a
#: row-level trigger copies the statement's text once per row it writes.
COMMENT_LIMIT = 8192


#: The escape character of :func:`encode`'s fields (``%`` would be a placeholder to a driver
#: that binds parameters into the statement).
ESCAPE = "~"
#: What a field's characters become: the separator, what could open or close a comment, the
#: placeholder mark, and the escape character itself (last: undoing the escapes in this order
#: with plain replacements gives the text back, each ``~`` of an encoded field starting one).
ESCAPES: tuple[tuple[str, str], ...] = (("|", "~7C"), ("*", "~2A"), ("%", "~25"), ("~", "~7E"))
_ESCAPED = str.maketrans(dict(ESCAPES))


def _field(value: str) -> str:
    """One field of :func:`encode`: ``~``, ``|``, ``*`` and ``%`` escaped as ``~`` and their
    code in hex (the separator, what could open or close a comment, what a driver binding
    parameters into the statement would read as a placeholder), NUL characters dropped."""
    if "~" in value or "|" in value or "*" in value or "%" in value:
        value = value.translate(_ESCAPED)
    return value.replace("\x00", "") if "\x00" in value else value


def encode(values: tuple[str, ...]) -> str:
    """The context as the triggers read it: ``1|<assignation>|<app>|<task>|<user>|<user key>|
    <origin>|<parent>|<table:key>|<reason>|<skip>``, each field as :func:`_field` makes it."""
    return "|".join((FORMAT_VERSION, *(_field(value) for value in values)))
