"""A signed, compact text form of an :class:`~koherent.context.AuditContext`.

Task queues carry the audit context from the process that enqueues work to the process that
runs it. Whoever can write to the queue could otherwise claim any user, so the context travels
signed: :func:`sign_context` turns a context into one short string, :func:`verify_context`
turns such a string back into a context, or raises :class:`InvalidSignedContext` saying why
it refuses it. Nothing here depends on a task library; the Celery integration uses it, and any
other transport can.

Format (version 1)::

    1|<assignation id>|<app>|<parent assignation id>|<user pk>:<signature>

Empty fields are ``None``. The user's primary key comes last, so it may hold any character but
control characters; no other field can hold ``|``. ``<signature>`` is the URL-safe base64
HMAC-SHA256 that :class:`django.core.signing.Signer` computes, under the salt
``koherent.signing.context`` (plus a purpose, e.g. ``.celery``), over the payload *and* a
binding string that is not transmitted. Transports bind a value to the work it starts with
:func:`sign_work` / :func:`verify_work`: the work's name (a Celery task name, a tasks-framework
module path), a digest of its arguments, keyword arguments and any options that decide what
runs (Celery's callbacks, errbacks, chain, chord and group), and its id when the transport has
one. A value copied onto other work (another task, other arguments, an added callback) therefore
fails verification, as does one signed for another purpose or with another key. The very same
work sent again (a message replayed byte for byte) cannot be told from a redelivery: binding
proves what a value was signed for, not how often it arrives.

The key is ``KOHERENT["SIGNING_KEY"]`` (default: ``SECRET_KEY``); keys in
``KOHERENT["SIGNING_KEY_FALLBACKS"]`` (default: ``SECRET_KEY_FALLBACKS``) are accepted when
verifying, so keys can be rotated without losing messages in flight. The signature proves who
wrote the value; it does not hide it: anyone who can read the queue can read the user's
primary key, the app and the assignation id.

The task id and the origin are not carried: the receiving side sets them (the id of the task
that runs, and an origin such as ``celery``).
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, NotRequired, TypedDict, Unpack

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.core.signing import Signer, b64_encode
from django.dispatch import receiver
from django.utils.encoding import force_bytes
from django.utils.functional import Promise

from koherent._config import user_settings
from koherent._users import StaticUserRef
from koherent._validation import (
    MAX_APP_LENGTH,
    MAX_ASSIGNATION_ID_LENGTH,
    MAX_USER_PK_LENGTH,
    validate_app,
    validate_assignation_id,
    validate_user_pk,
)
from koherent.context import AuditContext
from koherent.exceptions import InvalidSignedContext

__all__ = [
    "MAX_SIGNED_LENGTH",
    "SALT",
    "InvalidSignedContext",
    "Work",
    "arguments_digest",
    "sign_context",
    "sign_work",
    "verify_context",
    "verify_work",
    "work_binding",
]

#: The salt every signature is made under (a purpose is appended to it).
SALT: Final = "koherent.signing.context"
_VERSION: Final = "1"
_FIELD_SEPARATOR: Final = "|"
_SIGNATURE_SEPARATOR: Final = ":"
#: The longest string :func:`verify_context` looks at; longer ones are refused unread. It is
#: the longest value :func:`sign_context` can make: every field at its maximum length
#: (:mod:`koherent._validation`), the separators and the 43-character signature.
MAX_SIGNED_LENGTH: Final = (
    len(_VERSION)
    + 2 * MAX_ASSIGNATION_ID_LENGTH  # the assignation and its parent
    + MAX_APP_LENGTH
    + MAX_USER_PK_LENGTH
    + 4 * len(_FIELD_SEPARATOR)
    + len(_SIGNATURE_SEPARATOR)
    + 43
)
# What django.core.signing's HMAC-SHA256 signatures look like: 43 URL-safe base64 characters.
_SIGNATURE_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{43}")


class _ContextSigner(Signer):
    """Django's ``Signer``, deriving each key's salted HMAC key once instead of per call.

    The signatures are exactly those of :class:`~django.core.signing.Signer` (a test checks
    it), and :meth:`verify` accepts what ``Signer.unsign`` accepts: a signature by the key or
    by one of the fallback keys, compared in constant time.
    """

    def __init__(self, *, key: str, salt: str, fallback_keys: list[str | bytes]) -> None:
        super().__init__(key=key, salt=salt, fallback_keys=fallback_keys)
        self._macs: dict[str | bytes, hmac.HMAC] = {}

    def signature(self, value: str | bytes, key: str | bytes | None = None) -> str:
        secret = key or self.key
        mac = self._macs.get(secret)
        if mac is None:
            # What django.utils.crypto.salted_hmac derives from the salt and the secret.
            derived = hashlib.sha256(force_bytes(self.salt) + b"signer" + force_bytes(secret))
            mac = hmac.new(derived.digest(), digestmod=hashlib.sha256)
            self._macs[secret] = mac
        mac = mac.copy()
        mac.update(value.encode() if isinstance(value, str) else value)
        return b64_encode(mac.digest()).decode()

    def verify(self, message: str, signature: str) -> bool:
        """Whether ``signature`` is ``message``'s under the key or a fallback key.

        What ``Signer.unsign`` checks, without assembling and splitting ``message:signature``.
        """
        for key in (self.key, *self.fallback_keys):
            if hmac.compare_digest(self.signature(message, key), signature):
                return True
        return False


#: Signers by purpose, and the user model's primary-key parser, for the settings in force.
#: Emptied whenever Django reports a change to a setting they depend on.
_signers: dict[str, _ContextSigner] = {}
_pk_parsers: list[Callable[[str], Any]] = []
#: User primary keys converted from their text, by text (at most _USER_PKS_KEPT of them).
_user_pks: dict[str, Any] = {}
_USER_PKS_KEPT: Final = 1024
_NOT_PARSED: Final = object()
_WATCHED_SETTINGS = frozenset(
    {"KOHERENT", "SECRET_KEY", "SECRET_KEY_FALLBACKS", "AUTH_USER_MODEL"}
)


@receiver(setting_changed, dispatch_uid="koherent.signing.forget")
def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting in _WATCHED_SETTINGS:
        _signers.clear()
        _pk_parsers.clear()
        _user_pks.clear()


def _current_signer(purpose: str) -> _ContextSigner:
    """The signer for ``purpose`` with the keys configured now."""
    signer = _signers.get(purpose)
    if signer is None:
        overrides = user_settings()
        key: str | None = overrides.get("SIGNING_KEY")
        fallbacks: list[str | bytes] | None = overrides.get("SIGNING_KEY_FALLBACKS")
        if key is None:
            key = settings.SECRET_KEY
            if fallbacks is None:
                fallbacks = settings.SECRET_KEY_FALLBACKS
        signer = _ContextSigner(
            key=key,
            salt=f"{SALT}.{purpose}" if purpose else SALT,
            fallback_keys=list(fallbacks or ()),
        )
        _signers[purpose] = signer
    return signer


def _user_ref(text: str) -> StaticUserRef:
    """A reference to the user whose primary key is ``text``, converted to the pk's type.

    A new reference every time (each remembers on its own whether its user exists); the
    conversion of each text is kept, as the same users arrive again and again.
    """
    pk = _user_pks.get(text, _NOT_PARSED)
    if pk is _NOT_PARSED:
        validate_user_pk(text)
        if not _pk_parsers:
            if not apps.ready:
                return StaticUserRef(text)
            from django.contrib.auth import get_user_model

            _pk_parsers.append(get_user_model()._meta.pk.to_python)
        try:
            pk = _pk_parsers[0](text)
        except (ValidationError, TypeError, ValueError) as exc:
            raise ValueError(f"{text!r} is not a valid user primary key: {exc}") from None
        if len(_user_pks) >= _USER_PKS_KEPT:
            _user_pks.clear()
        _user_pks[text] = pk
    return StaticUserRef(pk)


def _bound(bind: str, payload: str) -> str:
    # The length prefix keeps "ab" + "c..." and "a" + "bc..." apart.
    return f"{len(bind)}{_SIGNATURE_SEPARATOR}{bind}{payload}"


@functools.lru_cache(maxsize=1024, typed=True)
def _payload(assignation_id: str | None, app: str | None, parent: str | None, user_pk: Any) -> str:
    """The checked payload of these fields (a process signs the same ones again and again)."""
    try:
        if user_pk is None:
            user = ""
        elif type(user_pk) is int and -(10**63) < user_pk < 10**63:
            user = str(user_pk)  # the common case, valid as it is
        else:
            # Checked as given (type), then as sent (length, control characters).
            user = validate_user_pk(str(validate_user_pk(user_pk)))
        return _FIELD_SEPARATOR.join(
            (
                _VERSION,
                "" if assignation_id is None else validate_assignation_id(assignation_id),
                "" if app is None else validate_app(app),
                "" if parent is None else validate_assignation_id(parent),
                user,
            )
        )
    except ValueError as exc:
        raise InvalidSignedContext(InvalidSignedContext.INVALID, str(exc)) from None


def sign_context(ctx: AuditContext, *, bind: str = "", purpose: str = "") -> str:
    """The signed text form of ``ctx``'s user, app, assignation and parent assignation.

    ``bind`` ties the signature to something the receiver knows independently (a task id):
    :func:`verify_context` must be given the same value. ``purpose`` separates uses (a value
    signed for ``"celery"`` does not verify for another purpose).

    Raises :class:`InvalidSignedContext` (reason ``invalid``) when a field of ``ctx`` is not
    a value :func:`verify_context` would accept.
    """
    payload = _payload(ctx.assignation_id, ctx.app, ctx.parent_assignation_id, ctx.user_id)
    signature = _current_signer(purpose).signature(_bound(bind, payload))
    return f"{payload}{_SIGNATURE_SEPARATOR}{signature}"


def verify_context(
    value: object,
    *,
    bind: str = "",
    purpose: str = "",
    task_id: str | None = None,
    origin: str | None = None,
) -> AuditContext:
    """The context signed in ``value``, checked; the inverse of :func:`sign_context`.

    The result has the user (by primary key, not fetched), app, assignation and parent
    assignation; its ``task_id`` and ``origin`` are not carried, and are the ones given here
    (the receiving side knows them: the running task's id, its kind of origin).
    Raises :class:`InvalidSignedContext`, whose ``reason`` is one of ``missing``,
    ``not-a-string``, ``oversized``, ``unsigned``, ``bad-signature`` (tampered with, signed
    with another key, for another purpose or bound to something else), ``malformed`` or
    ``invalid`` (a field fails :mod:`koherent._validation`).
    """
    error = InvalidSignedContext
    if value is None:
        raise error(error.MISSING, "no signed context was given")
    if not isinstance(value, str):
        raise error(error.NOT_A_STRING, f"expected a string, got {type(value).__name__}")
    if len(value) > MAX_SIGNED_LENGTH:
        raise error(
            error.OVERSIZED, f"{len(value)} characters long; the maximum is {MAX_SIGNED_LENGTH}"
        )
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate: no signer could have written it
        raise error(error.MALFORMED, "the value is not valid Unicode text") from None
    payload, separator, signature = value.rpartition(_SIGNATURE_SEPARATOR)
    if not separator:
        raise error(error.UNSIGNED, "the value carries no signature")
    if (
        _SIGNATURE_SHAPE.fullmatch(signature) is None  # not worth an HMAC
        or not _current_signer(purpose).verify(_bound(bind, payload), signature)
    ):
        raise error(
            error.BAD_SIGNATURE,
            "the signature does not match: the value was changed, or signed with another "
            "key or for another task",
        )
    assignation_id, app, parent, user = _fields(payload)
    try:
        user_ref = _user_ref(user) if user else None
    except ValueError as exc:
        raise error(error.INVALID, str(exc)) from None
    return AuditContext(
        assignation_id=assignation_id,
        app=app,
        parent_assignation_id=parent,
        user_ref=user_ref,
        task_id=task_id,
        origin=origin,
    )


@functools.lru_cache(maxsize=1024)
def _fields(payload: str) -> tuple[str | None, str | None, str | None, str]:
    """The checked fields of a verified payload (the same ones arrive again and again)."""
    error = InvalidSignedContext
    parts = payload.split(_FIELD_SEPARATOR, 4)
    if len(parts) != 5 or parts[0] != _VERSION:
        raise error(error.MALFORMED, f"not a version {_VERSION} signed context")
    _, assignation_id, app, parent, user = parts
    try:
        return (
            validate_assignation_id(assignation_id) if assignation_id else None,
            validate_app(app) if app else None,
            validate_assignation_id(parent) if parent else None,
            user,
        )
    except ValueError as exc:
        raise error(error.INVALID, str(exc)) from None


# -- Binding a signed value to the work it starts -------------------------------------------------


def _canonical_default(value: Any) -> Any:
    """A form of ``value`` (not a JSON type) that both ends of a serializer agree on.

    Mirrors what the serializers give the receiving side: kombu's JSON turns an object with
    ``__json__`` into its result and a lazy translation into text, and restores datetimes,
    dates, times, decimals, UUIDs and bytes as such (plain JSON gives their text); pickle and
    msgpack keep them. Each is reduced to one form. Anything else is bound by its type and
    ``repr()``, which must then be the same in the receiving process (pickle only).
    """
    reducer = getattr(value, "__json__", None)
    if reducer is not None:
        return reducer()
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):
        return {"__set__": sorted(_dumps(_canonical(item)) for item in value)}
    if isinstance(value, Sequence):
        return list(value)
    kind = type(value)
    return {"__repr__": f"{kind.__module__}.{kind.__qualname__}", "value": repr(value)}


def _canonical_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)  # what JSON makes of such a key: "1", "true", "null"
    return _dumps(_canonical(key))


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _canonical(value: Any) -> Any:
    """``value`` in JSON types only, every mapping's keys as JSON writes them (text).

    Exact types are dispatched first (the arguments of a message are mostly plain lists,
    dicts and scalars); subclasses (an enum, Celery's ``Signature``) and other types after.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    scalars = _SCALARS  # scalar items are kept as they are, without a call per item
    if kind is list or kind is tuple:
        return [item if type(item) in scalars else _canonical(item) for item in value]
    if kind is dict:
        return {
            (key if type(key) is str else _canonical_key(key)): (
                item if type(item) in scalars else _canonical(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, str | int | float):  # str and int enums: JSON writes their value
        return value
    if isinstance(value, Mapping):  # Celery's Signature is a dict
        return {_canonical_key(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return _canonical(_canonical_default(value))


#: The canonical JSON text of a value made of JSON types (one encoder, made once).
_dumps: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
).encode


def arguments_digest(*parts: Any) -> str:
    """The SHA-256 (hex) of the canonical JSON of ``parts`` (arguments, options, ...).

    The same on both ends of a serializer: tuples and lists are one, a mapping's keys are
    compared as JSON writes them, and the types kombu's JSON restores (datetime, date, time,
    Decimal, UUID, bytes) are compared by one text form (see :func:`_canonical_default`).
    Computed once per message by each end: one walk over the values, one ``json.dumps``, one
    hash. Raises ``RecursionError`` for a reference cycle.
    """
    return hashlib.sha256(_dumps(_canonical(parts)).encode()).hexdigest()


def work_binding(
    name: str,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    *,
    options: Mapping[str, Any] | None = None,
    work_id: str | None = None,
) -> str:
    """What a signed value is bound to: the work ``name`` run with these arguments.

    ``options`` holds whatever else decides what runs (Celery's canvas options); ``work_id``
    the id the transport gives the work, when it has one. Missing ``args``/``kwargs`` count
    as empty ones. Raises ``TypeError`` or ``ValueError`` for arguments with no canonical form
    (a reference cycle).
    """
    parts: tuple[Any, ...] = (args or (), kwargs or {})
    if options is not None:
        parts = (*parts, options)
    digest = arguments_digest(*parts)
    bound = f"{name}:{digest}"
    if work_id is not None:
        bound = f"{len(work_id)}:{work_id}{bound}"
    return bound


class Work(TypedDict):
    """The work a signed value is bound to: the keyword arguments of :func:`work_binding`
    (and of :func:`sign_work` and :func:`verify_work`)."""

    name: str
    args: Sequence[Any] | None
    kwargs: Mapping[str, Any] | None
    options: NotRequired[Mapping[str, Any] | None]
    work_id: NotRequired[str | None]


def _binding(work: Work, reason: str) -> str:
    """:func:`work_binding` of ``work``; arguments with no canonical form raise
    :class:`InvalidSignedContext` with ``reason``."""
    try:
        return work_binding(**work)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidSignedContext(reason, f"the arguments cannot be bound: {exc}") from None


def sign_work(ctx: AuditContext, *, purpose: str, **work: Unpack[Work]) -> str:
    """:func:`sign_context` bound to :func:`work_binding` of the work it is sent with
    (``name``, ``args``, ``kwargs`` and optionally ``options`` and ``work_id``).

    Raises :class:`InvalidSignedContext` (reason ``invalid``) for a context that cannot be
    signed, or arguments with no canonical form.
    """
    return sign_context(ctx, bind=_binding(work, InvalidSignedContext.INVALID), purpose=purpose)


def verify_work(
    value: object,
    *,
    purpose: str,
    task_id: str | None = None,
    origin: str | None = None,
    **work: Unpack[Work],
) -> AuditContext:
    """:func:`verify_context` of a value :func:`sign_work` signed for exactly this work.

    A value signed for other work (another name, other arguments or options, another id)
    raises :class:`InvalidSignedContext` with reason ``bad-signature``; arguments with no
    canonical form, reason ``malformed``.
    """
    if value is not None and isinstance(value, str) and len(value) <= MAX_SIGNED_LENGTH:
        bind = _binding(work, InvalidSignedContext.MALFORMED)
    else:
        bind = ""  # refused for what it is before any digest is worth computing
    return verify_context(value, bind=bind, purpose=purpose, task_id=task_id, origin=origin)
