"""The admin classes: assignations (list, timeline, revert) and tracked models' history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from koherent.exceptions import AssignationSpansDatabases
from koherent.models import Assignation
from koherent.query import (
    InvalidCursor,
    change_counts,
    effective_changes,
    get_assignation,
    history_for_assignation,
)
from koherent.revert import (
    AlreadyReverted,
    AssignationNotFound,
    RevertConflict,
    RevertError,
    RevertPermissionDenied,
    missing_revert_permissions,
    revert_assignation,
)

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern

    from koherent.query import HistoryEntry

#: Entries per page of an assignation's timeline.
TIMELINE_PAGE_SIZE = 50
#: Planned writes listed per action on the revert preview.
PREVIEW_LIMIT = 200
#: How a refused revert's message tells the user to override it: the revert page's checkbox.
FORCE_HOW = 'tick "Revert anyway" below and submit again'
FORCE_NAME = '"Revert anyway" ticked'


class _CountingChangeList(ChangeList):
    """The changelist, with the change count of the page's assignations in one query."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        counts = change_counts([a.pk for a in self.result_list])
        for record in self.result_list:
            record.koherent_change_count = counts.get(record.pk, 0)


class AssignationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Assignations: who did what through which app; each with its timeline and a revert."""

    list_display = ("id", "user_display", "app", "origin", "created", "change_count", "parent")
    list_filter = ("origin", "app", "created")
    search_fields = ("id",)
    search_help_text = "An assignation id, a parent assignation id or a Celery task id."
    date_hierarchy = "created"
    list_per_page = 50
    show_full_result_count = False
    timeline_template = "koherent_admin/assignation_timeline.html"
    revert_template = "koherent_admin/assignation_revert.html"

    # -- read only -------------------------------------------------------------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # -- list ------------------------------------------------------------------------------
    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _CountingChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Assignation], search_term: str
    ) -> tuple[QuerySet[Assignation], bool]:
        """Exact ids (index-friendly): the assignation, its children, or a task's."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(pk=term) | Q(parent_id=term) | Q(task_id=term)), False

    @admin.display(description="user")
    def user_display(self, obj: Assignation) -> str:
        if obj.user_id is not None:
            return str(obj.user)
        return obj.user_pk or "-"

    @admin.display(description="changes")
    def change_count(self, obj: Assignation) -> int:
        return getattr(obj, "koherent_change_count", 0)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assignation]:
        return super().get_queryset(request).select_related("user")

    # -- urls ------------------------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        extra = [
            path(
                "<path:object_id>/revert/",
                self.admin_site.admin_view(self.revert_view),
                name="{}_{}_revert".format(*info),
            )
        ]
        return extra + super().get_urls()

    def _url(self, name: str, *args: Any) -> str:
        info = self.admin_site.name, self.opts.app_label, self.opts.model_name
        return reverse("{}:{}_{}_".format(*info) + name, args=args)

    def _get(self, request: HttpRequest, object_id: str) -> Assignation:
        """The assignation (its record, or a stand-in for history written without one, see
        :func:`koherent.query.get_assignation`), if the user may view it."""
        record = get_assignation(unquote(object_id))
        if record is None:
            raise Http404(f"No assignation {unquote(object_id)!r}.")
        if not self.has_view_permission(request, record):
            raise PermissionDenied
        return record

    # -- detail: the timeline --------------------------------------------------------------
    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        record = self._get(request, object_id)
        try:
            history = history_for_assignation(record.pk)  # where the database router reads it
        except AssignationSpansDatabases as exc:
            # Rows on several databases: show the first one's, and say so.
            messages.warning(request, f"{exc}; showing the changes on {exc.databases[0]!r} only")
            history = history_for_assignation(record.pk, using=exc.databases[0])
        try:
            page = history.page(first=TIMELINE_PAGE_SIZE, after=request.GET.get("after"))
        except InvalidCursor:
            page = history.page(first=TIMELINE_PAGE_SIZE)
        entries = page.entries
        changes = effective_changes(entries)
        timeline = [
            {"entry": entry, "changes": entry_changes, "object_url": self._object_url(entry)}
            for entry, entry_changes in zip(entries, changes, strict=True)
        ]
        reverts = Assignation.objects.using(record._state.db).filter(
            origin="revert", parent_id=record.pk
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Assignation {record.pk}",
            "subtitle": None,
            "original": record,
            "record": record,
            "counts": sorted(history.counts().items()),
            "timeline": timeline,
            "page": page,
            "next_url": f"?after={page.end_cursor}" if page.has_next else None,
            "reverts": list(reverts),
            "children": list(
                Assignation.objects.using(record._state.db)
                .filter(parent_id=record.pk)
                .exclude(origin="revert")[:50]
            ),
            "revert_url": self._url("revert", quote(record.pk)),
            "parent_url": (
                self._url("change", quote(record.parent_id)) if record.parent_id else None
            ),
            "changelist_url": self._url("changelist"),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.timeline_template, context)

    def _object_url(self, entry: HistoryEntry) -> str | None:
        """The admin history page of the entry's object, when the model is registered."""
        meta = entry.row.instance_type._meta  # type: ignore[attr-defined]
        try:
            return reverse(
                f"{self.admin_site.name}:{meta.app_label}_{meta.model_name}_history",
                args=[quote(entry.object_id)],
            )
        except NoReverseMatch:
            return None

    # -- revert: preview and confirmation --------------------------------------------------
    def revert_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the plan of the revert (a dry run). POST: the revert, then its assignation."""
        record = self._get(request, object_id)
        using = None  # the database the router writes the assignation's history to
        try:
            plan = revert_assignation(record.pk, dry_run=True, using=using)
        except AssignationNotFound as exc:  # pragma: no cover - the record exists
            raise Http404(str(exc)) from exc
        except AssignationSpansDatabases as exc:
            messages.error(request, f"{exc}: revert it with koherent_revert --database")
            return HttpResponseRedirect(self._url("change", quote(record.pk)))
        missing = missing_revert_permissions(request.user, plan)
        error = None
        status = 200
        if request.method == "POST":
            if missing:
                raise PermissionDenied
            force = request.POST.get("force") == "on"
            try:
                # Checked again inside the revert's transaction, against the plan applied.
                result = revert_assignation(
                    record.pk, force=force, using=using, user=request.user, via="admin"
                )
            except RevertPermissionDenied as exc:
                error, status = str(exc), 403
                missing = list(exc.missing)
            except (RevertConflict, AlreadyReverted) as exc:
                error = exc.message(how=FORCE_HOW, name=FORCE_NAME)
            except RevertError as exc:
                error = str(exc)
            else:
                summary = (
                    f"{result.deleted} deleted, {result.restored} restored, "
                    f"{result.recreated} re-created, as assignation "
                    f"{result.revert_assignation_id}"
                )
                forced = (
                    f" ({len(result.forced_conflicts)} conflict(s) overridden)"
                    if result.forced_conflicts
                    else ""
                )
                self.log_change(request, record, f"Reverted: {summary}{forced}.")
                self.message_user(request, f"Reverted: {summary}.", messages.SUCCESS)
                return HttpResponseRedirect(
                    self._url("change", quote(result.revert_assignation_id))
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Revert assignation {record.pk}?",
            "subtitle": None,
            "original": record,
            "record": record,
            "plan": plan,
            "deletes": plan.deletes[:PREVIEW_LIMIT],
            "restores": plan.restores[:PREVIEW_LIMIT],
            "recreates": plan.recreates[:PREVIEW_LIMIT],
            "truncated": any(
                len(changes) > PREVIEW_LIMIT
                for changes in (plan.deletes, plan.restores, plan.recreates)
            ),
            "needs_force": bool(plan.conflicts or plan.reverted_by),
            "missing_permissions": missing,
            "error": error,
            "detail_url": self._url("change", quote(record.pk)),
            "changelist_url": self._url("changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.revert_template, context, status=status)


class KoherentHistoryAdmin(SimpleHistoryAdmin):  # type: ignore[misc]
    """simple-history's admin with the audit columns on the history page.

    The object's history lists, for each row, its assignation (a link to the assignation's
    page), the app and the Celery task.
    """

    history_list_display = ["assignation", "app", "task"]

    @admin.display(description="assignation")
    def assignation(self, record: Model) -> str:
        value = getattr(record, "assignation_id", None)
        if not value:
            return "-"
        try:
            url = reverse(
                f"{self.admin_site.name}:koherent_assignation_change", args=[quote(value)]
            )
        except NoReverseMatch:
            return str(value)
        return format_html('<a href="{}">{}</a>', url, value)

    @admin.display(description="task")
    def task(self, record: Model) -> str:
        return getattr(record, "task_id", None) or "-"
