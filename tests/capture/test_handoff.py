"""How the context travels with a statement: a leading comment for the common statement, the
``koherent.context`` setting for a long one, and what the trigger makes of either (and of a
comment it did not get from Koherent)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import koherent
from koherent._handoff import _short
from koherent._trigger_context import COMMENT_LIMIT, encode
from koherent.models import Assignation
from tests.capture.models import Product
from tests.capture.support import UNATTRIBUTED, raw, raw_unwrapped, rows, stamp

pytestmark = pytest.mark.django_db

SETTER = "SELECT set_config('koherent.context', "


def _stamp_of(user: Any, app: str, assignation_id: str) -> tuple[Any, ...]:
    return (user.pk, str(user.pk), app, assignation_id, None)


def test_encode_escapes_the_separator_comment_marks_and_placeholders() -> None:
    text = encode(("a-1", "app", "", "7", "x|y*/z /*w 100%", "manual", "", "", "r~7C", ""))
    assert text == "1|a-1|app||7|x~7Cy~2A/z /~2Aw 100~25|manual|||r~7E7C|"
    assert "*" not in text
    assert "%" not in text
    assert text.count("|") == 10


def test_a_save_carries_its_context_in_a_comment_and_sends_nothing_else(user: Any) -> None:
    with koherent.assignation("a-comment", user=user, app="web"):
        Product.objects.create(name="first")  # the record, the user check
        with CaptureQueriesContext(connection) as queries:
            Product.objects.create(name="second")
    (sent,) = [q["sql"] for q in queries.captured_queries]
    assert sent.startswith(f"/*koherent:1|a-comment|web||{user.pk}|{user.pk}|manual||||*/ INSERT")
    assert "set_config" not in sent
    assert [stamp(r) for r in rows(Product)] == [_stamp_of(user, "web", "a-comment")] * 2


def _long_update(pks: list[int], price: int) -> None:
    """An ``update()`` whose statement is longer than the comment limit."""
    padding = list(range(10**6, 10**6 + COMMENT_LIMIT // 3))  # keys no row has
    Product.objects.filter(pk__in=[*pks, *padding]).update(price=price)


def test_a_long_statement_sets_the_context_and_the_next_statements_set_their_own(
    user: Any, other_user: Any
) -> None:
    """A setting outlives its statement in a transaction: the statements after it set theirs
    (or clear it), so a later statement is never stamped with the long one's context."""
    products = [Product.objects.create(name=f"p{i}", price=1) for i in range(3)]
    pks = [p.pk for p in products]
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        with koherent.assignation("a-long", user=user, app="bulk"):
            _long_update(pks, 2)
        with koherent.assignation("a-after", user=other_user, app="web"):
            Product.objects.filter(pk=pks[0]).update(price=3)
        Product.objects.filter(pk=pks[1]).update(price=4)  # no context
        with koherent.assignation("a-last", user=user, app="web"):
            Product.objects.filter(pk=pks[2]).update(price=5)
    sent = [q["sql"] for q in queries.captured_queries if "capture_product" in q["sql"]]
    assert len(sent[0]) > COMMENT_LIMIT
    assert sent[0].startswith(SETTER + "E'1|a-long|bulk|")
    assert sent[1].startswith(SETTER + "E'1|a-after|web|")
    assert sent[2].startswith(SETTER + "'', true); UPDATE")
    assert sent[3].startswith("/*koherent:1|a-last|web|")  # cleared: comments again
    updates = rows(Product, history_type="~")
    assert [(r.id, r.price) for r in updates] == [
        (pks[0], 2),
        (pks[1], 2),
        (pks[2], 2),
        (pks[0], 3),
        (pks[1], 4),
        (pks[2], 5),
    ]
    assert [stamp(r) for r in updates] == [
        *[_stamp_of(user, "bulk", "a-long")] * 3,
        _stamp_of(other_user, "web", "a-after"),
        UNATTRIBUTED,
        _stamp_of(user, "web", "a-last"),
    ]


def test_what_counts_as_long_is_the_statement_with_its_values_bound() -> None:
    """The update trigger copies the statement per row, parameters bound (client-side); an
    insert's and a delete's triggers read it once per statement."""
    long_value = "n" * COMMENT_LIMIT
    assert _short("UPDATE t SET name = %s", [long_value]) is False
    assert _short("UPDATE t SET name = %(name)s", {"name": long_value}) is False
    assert _short("UPDATE t SET name = %s", [long_value[:100]]) is True
    assert _short("INSERT INTO t (name) VALUES (%s)", [long_value]) is True
    assert _short("DELETE FROM t WHERE name = %s", [long_value]) is True
    assert _short("UPDATE t SET name = 'x'" + " " * COMMENT_LIMIT, None) is False


def test_a_large_json_or_list_value_counts_as_long() -> None:
    """A ``JSONField``'s value is bound wrapped in the driver's JSON adapter and an
    ``ArrayField``'s as a list: their text counts like a string's, scalars do not."""
    document = {"notes": ["n" * 100] * (COMMENT_LIMIT // 100)}
    wrapped = connection.ops.adapt_json_value(document, None)  # psycopg's Jsonb, not text
    assert _short("UPDATE t SET data = %s WHERE id = %s", [wrapped, 1]) is False
    assert _short("UPDATE t SET tags = %s", [document["notes"]]) is False
    small = connection.ops.adapt_json_value({"notes": ["n"]}, None)
    assert _short("UPDATE t SET data = %s WHERE id = %s", [small, 1]) is True
    assert _short("UPDATE t SET n = %s", [10**100, 1.5, None, True]) is True


def test_a_large_binary_value_counts_as_long() -> None:
    """A ``BinaryField``'s value may be bound as ``bytes``, ``bytearray`` or ``memoryview``;
    each is sent as hex text, two characters a byte."""
    half = bytes(COMMENT_LIMIT // 2 + 1)
    for value in (half, bytearray(half), memoryview(half)):
        assert _short("UPDATE t SET blob = %s", [value]) is False, type(value)
        assert _short("UPDATE t SET blob = %s", [value[:16]]) is True, type(value)


def test_a_long_statement_in_autocommit_leaves_nothing_for_the_next(user: Any) -> None:
    product = Product.objects.create(name="p", price=1)
    with koherent.assignation("a-long", user=user, app="bulk"):
        _long_update([product.pk], 2)
    Product.objects.filter(pk=product.pk).update(price=3)  # no context, a transaction of its own
    first, second = rows(Product, history_type="~")
    assert stamp(first) == _stamp_of(user, "bulk", "a-long")
    assert stamp(second) == UNATTRIBUTED


def test_a_comment_inside_the_statement_is_not_a_context(user: Any) -> None:
    """Only a comment the statement starts with counts: a value a user typed cannot pose as
    one (client-side binding puts parameters in the statement's text)."""
    product = Product.objects.create(name="p", price=1)
    forged = f"/*koherent:1|a-forged|evil||{user.pk}|{user.pk}|manual||||*/"
    Product.objects.filter(pk=product.pk).update(name=forged)  # no context
    raw(f"UPDATE capture_product SET price = 2 WHERE name = '{forged}'")
    first, second = rows(Product, history_type="~")
    assert first.name == forged
    assert stamp(first) == UNATTRIBUTED
    assert stamp(second) == UNATTRIBUTED
    assert not Assignation.objects.filter(pk="a-forged").exists()


def _values(**changes: str) -> tuple[str, ...]:
    fields = ("assignation", "app", "task", "user", "user_pk", "origin", "parent")
    values = dict.fromkeys(fields, "") | {"assignation": "a-1", "origin": "manual"}
    return (*(values | changes).values(), "", "", "")


@pytest.mark.parametrize(
    "comment",
    [
        "/*koherent:2" + encode(_values())[1:] + "*/",  # a format this trigger does not know
        "/*koherent:1|a-short|app*/",  # fields missing
        "/*koherent:" + encode(_values()) + "|extra*/",  # a field too many
        "/*koherent:" + encode(_values(assignation="a bad id")) + "*/",  # fails its check
        "/*koherent:" + encode(_values(user="not-a-key")) + "*/",  # not of the user key's type
    ],
    ids=["version", "short", "long", "bad-id", "bad-user"],
)
def test_a_malformed_comment_writes_the_row_unattributed(comment: str) -> None:
    product = Product.objects.create(name="p", price=1)
    raw_unwrapped(f"{comment} UPDATE capture_product SET price = 9 WHERE id = {product.pk}")
    (row,) = rows(Product, history_type="~")
    assert row.price == 9  # the change is kept
    assert stamp(row) == UNATTRIBUTED
    assert not Assignation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_which_context_a_trigger_reads(user: Any) -> None:
    """The ``koherent.context`` setting first, then a comment the statement starts with, then
    the per-value settings of a session outside Django."""
    product = Product.objects.create(name="p", price=1)
    comment = f"/*koherent:1|a-comment|web||{user.pk}|{user.pk}|||||*/"
    with transaction.atomic():
        raw_unwrapped(
            "SELECT set_config('koherent.assignation_id', 'a-session', true); "
            f"{comment} UPDATE capture_product SET price = 2 WHERE id = {product.pk}"
        )
    with transaction.atomic():
        raw_unwrapped(
            "SELECT set_config('koherent.context', '1|a-setting|bulk||||||||', true); "
            f"SELECT 1; {comment} UPDATE capture_product SET price = 3 WHERE id = {product.pk}"
        )
    with transaction.atomic():
        raw_unwrapped(
            "SELECT set_config('koherent.app', 'psql-fix', true); "
            f"UPDATE capture_product SET price = 4 WHERE id = {product.pk}"
        )
    first, second, third = rows(Product, history_type="~")
    # The comment only counts at the start of what the client sent.
    assert (first.assignation_id, first.app) == ("a-session", None)
    assert (second.assignation_id, second.app) == ("a-setting", "bulk")
    assert (third.assignation_id, third.app) == (None, "psql-fix")


def test_values_with_quotes_separators_and_comment_marks_arrive_intact(user: Any) -> None:
    reason = "it's 100% done \\ o'clock %s %(x)s a|b */ c /* d %7C %25 |*/"
    with koherent.assignation("a-marks", user=user, app="web"):
        product = Product(name="q", price=1)
        product._change_reason = reason  # type: ignore[attr-defined]
        product.save()  # an INSERT with parameters
        product.price = 2
        product._change_reason = reason  # type: ignore[attr-defined]
        product.save()  # an UPDATE with parameters
        with connection.cursor() as cursor:  # no parameters: no % doubling
            product._change_reason = reason  # type: ignore[attr-defined]
            product.price = 3
            product.save()
            cursor.execute(f"UPDATE capture_product SET stock = 1 WHERE id = {product.pk}")
    history = rows(Product)
    assert [r.history_change_reason for r in history] == [reason, reason, reason, None]
    assert [stamp(r) for r in history] == [_stamp_of(user, "web", "a-marks")] * 4


def test_each_statement_reads_the_context_when_it_runs(user: Any) -> None:
    """Each statement hands over the context as it is then: another context, a row context (a
    change reason), and a request's user that authentication settled on after the first write
    (Django REST framework sets ``request.user`` in the view)."""
    from django.contrib.auth.models import AnonymousUser

    from koherent._users import RequestUserRef

    class Request:
        user: Any = AnonymousUser()

    request = Request()
    product = Product.objects.create(name="p", price=1)
    with koherent.assignation("a-one", user=RequestUserRef(request), app="web"):  # type: ignore[arg-type]
        Product.objects.filter(pk=product.pk).update(price=2)  # before authentication
        request.user = user
        Product.objects.filter(pk=product.pk).update(price=3)
        with koherent.assignation("a-two", app="web"):
            Product.objects.filter(pk=product.pk).update(price=4)
        product.refresh_from_db()
        product.price = 5
        product._change_reason = "why"  # type: ignore[attr-defined]
        product.save()
        Product.objects.filter(pk=product.pk).update(price=6)
    history = rows(Product, history_type="~")
    assert [(r.assignation_id, r.history_change_reason) for r in history] == [
        ("a-one", None),
        ("a-one", None),
        ("a-two", None),
        ("a-one", "why"),
        ("a-one", None),
    ]
    assert [r.history_user_id for r in history] == [None, user.pk, user.pk, user.pk, user.pk]


def test_pgtrigger_ignore_in_front_of_the_comment(user: Any) -> None:
    """pgtrigger.ignore() puts its own setter in front of the statement: the comment after it
    still counts."""
    import pgtrigger

    product = Product.objects.create(name="p", price=1)
    with (
        koherent.assignation("a-ignore", user=user, app="web"),
        pgtrigger.ignore("capture.Product:koherent_delete"),
        CaptureQueriesContext(connection) as queries,
    ):
        Product.objects.filter(pk=product.pk).update(price=2)
    (sent,) = [q["sql"] for q in queries.captured_queries]
    assert sent.startswith("SELECT set_config('pgtrigger.ignore', ")
    (row,) = rows(Product, history_type="~")
    assert stamp(row) == _stamp_of(user, "web", "a-ignore")


def test_pgtrigger_ignore_adding_parameters_to_a_statement_without(user: Any) -> None:
    """pgtrigger.ignore() binds its setter's value as a parameter, also into a statement sent
    without any: the context's text holds no ``%`` a driver would read as a placeholder."""
    import pgtrigger

    from koherent._handoff import table_reason

    product = Product.objects.create(name="p", price=1)
    with (
        koherent.assignation("a-ignore", user=user, app="web"),
        pgtrigger.ignore("capture.Product:koherent_delete"),
        table_reason(Product, "100% sure, 50%s off, ~7C"),
    ):
        raw(f"UPDATE capture_product SET price = 2 WHERE id = {product.pk}")
    (row,) = rows(Product, history_type="~")
    assert row.history_change_reason == "100% sure, 50%s off, ~7C"
    assert stamp(row) == _stamp_of(user, "web", "a-ignore")


def test_a_write_of_a_table_without_triggers_is_sent_as_it_is_or_clears_a_setting(
    user: Any,
) -> None:
    """A table no trigger captures (Django's users) gets nothing, except the clearing of a
    setting an earlier statement of the transaction sent."""
    from django.contrib.auth import get_user_model

    users = get_user_model()
    pks = [Product.objects.create(name=f"p{i}", price=1).pk for i in range(2)]
    table = f'INSERT INTO "{users._meta.db_table}"'
    with (
        transaction.atomic(),
        CaptureQueriesContext(connection) as queries,
        koherent.assignation("a-long", user=user, app="bulk"),
    ):
        users.objects.create(username="before")
        _long_update(pks, 2)  # sends the setting
        users.objects.create(username="after")  # clears it
        users.objects.create(username="then")
    sent = [q["sql"] for q in queries.captured_queries if table in q["sql"]]
    assert [s.split(" (", 1)[0] for s in sent] == [
        table,
        SETTER + "'', true); " + table,
        table,
    ]


def test_a_write_of_a_table_without_triggers_costs_no_connection_checks(
    user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common write of a project that captures some models by triggers and the others by
    signals: the hand-off looks at the statement's text only, not at the connection's state."""
    from django.contrib.auth import get_user_model

    from koherent import _handoff

    checks: list[object] = []
    original = _handoff._in_failed_transaction

    def counted(cursor: Any) -> bool:
        checks.append(cursor)
        return original(cursor)

    monkeypatch.setattr(_handoff, "_in_failed_transaction", counted)
    with koherent.assignation("a-mixed", user=user):
        get_user_model().objects.create(username="plain")
        assert checks == []
        Product.objects.create(name="captured")  # control: a captured table is checked
    assert len(checks) == 1
