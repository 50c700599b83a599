"""Who may revert, and who a revert is recorded for: the one permission check of the admin,
``revert_assignation(user=)`` and (in tests/graphql) the mutation, covering cascades; the
admin's ``LogEntry``; the ``koherent.revert`` logger; ``koherent_revert``'s confirmation and
attribution; and who may join a revert's assignation."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

import koherent
from koherent import revert as revert_api
from koherent.management.commands import koherent_revert as command
from koherent.models import Assignation
from tests.testapp.models import Order
from tests.undoapp.models import Invoice, Line, Payment, Reminder

pytestmark = pytest.mark.django_db

KOHERENT_MIDDLEWARE = "koherent.middleware.KoherentMiddleware"


@dataclass
class Victim:
    """An invoice created by ``assignation_id`` (alice), and another user's line and payment
    on it: deleting the invoice (the revert) takes them too, by cascade."""

    assignation_id: str
    invoice: Invoice
    line: Line
    payment: Payment


@pytest.fixture
def victim(user: Any, other_user: Any) -> Victim:
    with koherent.assignation(user=user, app="shop") as ctx:
        invoice = Invoice.objects.create(number="O-1", total=5)
    with koherent.assignation(user=other_user, app="shop"):
        line = Line.objects.create(invoice=invoice, position=1, product="bob's")
    payment = Payment.objects.create(invoice=invoice, amount=5)  # not tracked
    return Victim(ctx.assignation_id or "", invoice, line, payment)


def grant(user: Any, *codenames: str) -> Any:
    """``user`` with these permissions, fetched again (Django caches permissions on it)."""
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    """A staff user who may view assignations and add, change and delete invoices only."""
    dave = django_user_model.objects.create_user(username="dave", password="pw", is_staff=True)
    return grant(dave, "view_assignation", "add_invoice", "change_invoice", "delete_invoice")


def untouched(victim: Victim) -> bool:
    return (
        Invoice.objects.filter(pk=victim.invoice.pk).exists()
        and Line.objects.filter(pk=victim.line.pk).exists()
        and Payment.objects.filter(pk=victim.payment.pk).exists()
    )


def _revert_url(assignation_id: str) -> str:
    return reverse("admin:koherent_assignation_revert", args=[assignation_id])


# -- the permission check: cascades included -------------------------------------------------


def test_the_plan_requires_the_permissions_of_what_its_deletions_cascade_to(
    victim: Victim,
) -> None:
    plan = koherent.revert_assignation(victim.assignation_id, dry_run=True)
    assert [str(c) for c in plan.deletes] == [f"delete undoapp.Invoice {victim.invoice.pk}"]
    # The invoice's deletion takes bob's line and the payment: the admin asks for both.
    assert plan.required_permissions == (
        "undoapp.delete_invoice",
        "undoapp.delete_line",
        "undoapp.delete_payment",
    )


def test_a_deletion_that_sets_foreign_keys_to_null_needs_their_change_permission(
    user: Any, staff: Any
) -> None:
    with koherent.assignation(user=user) as ctx:
        invoice = Invoice.objects.create(number="O-3")
    reminder = Reminder.objects.create(invoice=invoice, text="pay")
    plan = koherent.revert_assignation(ctx.assignation_id or "", dry_run=True)
    assert plan.required_permissions == ("undoapp.change_reminder", "undoapp.delete_invoice")
    with pytest.raises(revert_api.RevertPermissionDenied) as caught:
        koherent.revert_assignation(ctx.assignation_id or "", force=True, user=staff)
    assert caught.value.missing == ("undoapp.change_reminder",)
    assert Reminder.objects.get(pk=reminder.pk).invoice_id == invoice.pk
    staff = grant(staff, "change_reminder")
    koherent.revert_assignation(ctx.assignation_id or "", force=True, user=staff)
    assert Reminder.objects.get(pk=reminder.pk).invoice_id is None


def test_admin_revert_anyway_refuses_a_cascade_the_user_may_not_delete(
    client: Client, staff: Any, victim: Victim
) -> None:
    client.force_login(staff)
    preview = client.get(_revert_url(victim.assignation_id))
    assert preview.status_code == 200
    assert preview.context["missing_permissions"] == [
        "undoapp.delete_line",
        "undoapp.delete_payment",
    ]
    assert "undoapp.delete_line" in preview.content.decode()
    refused = client.post(_revert_url(victim.assignation_id), {"force": "on"})
    assert refused.status_code == 403
    assert untouched(victim)
    assert not Assignation.objects.filter(origin="revert").exists()
    assert not LogEntry.objects.exists()


def test_admin_revert_is_checked_again_inside_the_revert(
    client: Client, staff: Any, victim: Victim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin's own preview check is only for the page: with it out of the way (as when a
    line is added between the preview and the revert), the revert still refuses."""
    import koherent.admin.core

    monkeypatch.setattr(koherent.admin.core, "missing_revert_permissions", lambda u, p: [])
    client.force_login(staff)
    response = client.post(_revert_url(victim.assignation_id), {"force": "on"})
    assert response.status_code == 403
    assert (
        "missing permission(s) undoapp.delete_line, undoapp.delete_payment"
        in (response.context["error"])
    )
    assert response.context["missing_permissions"] == [
        "undoapp.delete_line",
        "undoapp.delete_payment",
    ]
    assert untouched(victim)
    assert not LogEntry.objects.exists()


def test_admin_revert_with_every_permission_is_recorded_and_logged(
    client: Client,
    staff: Any,
    victim: Victim,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without KoherentMiddleware nothing else puts the user in the context.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != KOHERENT_MIDDLEWARE]
    staff = grant(staff, "delete_line", "delete_payment")
    client.force_login(staff)
    with caplog.at_level(logging.WARNING, "koherent.revert"):
        response = client.post(_revert_url(victim.assignation_id), {"force": "on"})
    assert response.status_code == 302
    assert not Invoice.objects.filter(pk=victim.invoice.pk).exists()
    revert = Assignation.objects.get(origin="revert", parent_id=victim.assignation_id)
    assert revert.user_pk == str(staff.pk)
    deletion = Invoice.history.filter(history_type="-").get()
    assert (deletion.user_pk, deletion.assignation_id) == (str(staff.pk), revert.pk)
    # Django's admin history of the reverted assignation names the revert.
    [entry] = LogEntry.objects.all()
    assert (entry.user_id, entry.action_flag, entry.object_id) == (
        staff.pk,
        CHANGE,
        victim.assignation_id,
    )
    assert revert.pk in entry.get_change_message()
    [record] = [r for r in caplog.records if r.name == "koherent.revert"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"user {staff.pk} ('dave') reverted assignation {victim.assignation_id}" in message
    assert "via admin" in message
    assert revert.pk in message


def test_revert_assignation_with_user_checks_inside_the_transaction(
    staff: Any, victim: Victim, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(revert_api.RevertPermissionDenied) as caught:
        koherent.revert_assignation(victim.assignation_id, force=True, user=staff)
    assert caught.value.missing == ("undoapp.delete_line", "undoapp.delete_payment")
    assert "missing permission(s) undoapp.delete_line, undoapp.delete_payment" in str(caught.value)
    assert untouched(victim)
    assert not Assignation.objects.filter(origin="revert").exists()
    assert any(r.name == "koherent.revert" and "refused" in r.getMessage() for r in caplog.records)


def test_the_check_is_made_against_the_plan_applied_not_a_stale_preview(
    user: Any, other_user: Any, staff: Any
) -> None:
    with koherent.assignation(user=user) as ctx:
        invoice = Invoice.objects.create(number="O-2")
    preview = koherent.revert_assignation(ctx.assignation_id or "", dry_run=True)
    revert_api.check_revert_permissions(staff, preview)  # nothing else hangs on the invoice yet
    with koherent.assignation(user=other_user):
        Line.objects.create(invoice=invoice, position=1, product="added since")
    with pytest.raises(revert_api.RevertPermissionDenied) as caught:
        koherent.revert_assignation(ctx.assignation_id or "", force=True, user=staff)
    assert caught.value.missing == ("undoapp.delete_line",)
    assert Line.objects.filter(invoice=invoice).exists()


def test_a_revert_with_user_is_recorded_as_theirs(user: Any, victim: Victim) -> None:
    admin = type(user).objects.create_superuser(username="root", password="pw")
    result = koherent.revert_assignation(victim.assignation_id, force=True, user=admin)
    assert Assignation.objects.get(pk=result.revert_assignation_id).user_pk == str(admin.pk)
    assert not Line.objects.filter(pk=victim.line.pk).exists()


def test_without_user_nothing_is_checked(victim: Victim) -> None:
    """Trusted code (a script, the command) reverts as before."""
    result = koherent.revert_assignation(victim.assignation_id, force=True)
    assert result.deleted == 1
    assert not Line.objects.filter(pk=victim.line.pk).exists()


# -- koherent_revert: confirmation and attribution --------------------------------------------


def run_revert(*args: str, stdin: Any = None) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    options: dict[str, Any] = {"stdout": out, "stderr": err}
    if stdin is not None:
        options["stdin"] = stdin
    call_command("koherent_revert", *args, **options)
    return out.getvalue(), err.getvalue()


def test_command_without_a_terminal_and_without_yes_is_refused(victim: Victim) -> None:
    with pytest.raises(CommandError) as caught:
        run_revert(victim.assignation_id, "--force", stdin=StringIO("yes\n"))
    assert caught.value.returncode == 1
    assert "stdin is not a terminal" in str(caught.value)
    assert "--yes" in str(caught.value)
    assert untouched(victim)
    assert not Assignation.objects.filter(origin="revert").exists()


class Terminal:
    """A real pseudo-terminal: the command reads its stdin from the slave end."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.stdin = os.fdopen(slave, "r")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        self.stdin.close()
        os.close(self.master)


@pytest.fixture
def terminal() -> Any:
    tty = Terminal()
    yield tty
    tty.close()


def test_command_on_a_terminal_asks_and_reverts_on_yes(
    victim: Victim, terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    assert terminal.stdin.isatty()
    terminal.type("yes\n")
    with caplog.at_level(logging.WARNING, "koherent.revert"):
        out, _ = run_revert(victim.assignation_id, "--force", stdin=terminal.stdin)
    assert f"Plan to revert {victim.assignation_id}" in out
    assert f"Revert assignation {victim.assignation_id}? Type 'yes' to continue:" in out
    assert "Reverted" in out
    assert not Invoice.objects.filter(pk=victim.invoice.pk).exists()
    # Nobody named with --user: the OS user who ran it is recorded with the app.
    revert = Assignation.objects.get(origin="revert")
    assert (revert.user_pk, revert.app) == (None, f"koherent_revert@{command.os_user()}")
    [record] = [r for r in caplog.records if r.name == "koherent.revert"]
    assert f"via command (OS user {command.os_user()!r})" in record.getMessage()


def test_command_on_a_terminal_cancels_on_anything_else(
    victim: Victim, terminal: Terminal
) -> None:
    terminal.type("n\n")
    with pytest.raises(CommandError, match="cancelled; nothing was changed") as caught:
        run_revert(victim.assignation_id, "--force", stdin=terminal.stdin)
    assert caught.value.returncode == 2
    assert untouched(victim)
    assert not Assignation.objects.filter(origin="revert").exists()


def test_command_with_yes_and_user_records_the_user(
    victim: Victim, other_user: Any, terminal: Terminal
) -> None:
    out, _ = run_revert(
        victim.assignation_id, "--force", "--yes", "--user", "bob", stdin=terminal.stdin
    )
    assert "Type 'yes'" not in out  # --yes: no question, even on a terminal
    revert = Assignation.objects.get(origin="revert")
    assert (revert.user_pk, revert.app) == (str(other_user.pk), None)


def test_a_revert_nobody_owns_cannot_be_joined(client: Client, user: Any, victim: Victim) -> None:
    run_revert(victim.assignation_id, "--force", "--yes")
    revert = Assignation.objects.get(origin="revert")
    assert revert.user_pk is None
    client.force_login(user)
    response = client.post("/orders/", headers={"X-Assignation-ID": revert.pk})
    assert response.status_code == 403
    assert revert.pk in response.json()["detail"]
    client.logout()
    assert client.post("/orders/", headers={"X-Assignation-ID": revert.pk}).status_code == 403
    assert not Order.history.filter(assignation_id=revert.pk).exists()


def test_admin_revert_without_a_csrf_token_is_refused(staff: Any, victim: Victim) -> None:
    staff = grant(staff, "delete_line", "delete_payment")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(_revert_url(victim.assignation_id), {"force": "on"}).status_code == 403
    assert untouched(victim)
