"""Stage 2, run by this version after ``migrate`` and ``koherent_upgrade``: read and use the
history koherent 0.2.0 wrote. Prints one JSON document of facts for the test to check.

Usage: ``python check_upgraded.py <stage-1 JSON file>``.
"""

import importlib
import json
import sys
import warnings

import django

warnings.simplefilter("ignore", DeprecationWarning)  # the project's own 0.2.0 names
django.setup()

import strawberry  # noqa: E402
from authentikate.models import User  # noqa: E402
from django.test import Client as HttpClient  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.urls import reverse  # noqa: E402
from shelf.models import Book, Library, Loan  # noqa: E402

import koherent  # noqa: E402
from koherent.legacy import DEPRECATED, DEPRECATED_MODULES  # noqa: E402
from koherent.query import HistoryEntry, history_for_assignation, list_assignations  # noqa: E402
from koherent.revert import revert_assignation  # noqa: E402
from koherent.strawberry import KoherentExtension, KoherentQuery  # noqa: E402

with open(sys.argv[1]) as stage1_file:
    stage1 = json.load(stage1_file)
A = stage1["assignations"]
facts: dict = {}

# 1. Every old row, read through Koherent.
facts["rows"] = {}
for model in (Library, Book, Loan):
    entries = [HistoryEntry.from_row(row) for row in model.provenance.order_by("history_id")]
    facts["rows"][model._meta.db_table.replace("shelf_", "shelf_historical")] = [
        [e.history_id, e.user_id, e.app, e.assignation_id, e.kind.value] for e in entries
    ]
facts["provenance_entries"] = Library.objects.get(
    pk=stage1["ids"]["library"]
).provenance_entries.count()

# 2. The 0.2.0 names, each with its warning.
names = {}
for (module, name), (_replacement, _source) in sorted(DEPRECATED.items()):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(importlib.import_module(module), name)
    names[f"{module}.{name}"] = {
        "works": value is not None,
        "warnings": [str(w.message) for w in caught if w.category is DeprecationWarning],
    }
facts["names"] = names
facts["modules"] = sorted(DEPRECATED_MODULES)

# 3. history_for_assignation and list_assignations on 0.2.0's assignations.
facts["history"] = {
    key: [
        [e.model_label, e.kind.value, str(e.object_id), e.user_id, e.app]
        for e in history_for_assignation(value)
    ]
    for key, value in A.items()
}
facts["assignations"] = {
    s.assignation.id: {
        "user_pk": s.assignation.user_pk,
        "app": s.assignation.app,
        "origin": s.assignation.origin,
        "changes": s.change_count,
    }
    for s in list_assignations(limit=50)
}

# 4. The admin: the assignation list and the change page of the 150-character assignation.
admin_user = User.objects.create_superuser("admin", "admin@example.org", "pw")
http = HttpClient()
http.force_login(admin_user)
listing = http.get(reverse("admin:koherent_assignation_changelist"))
detail = http.get(reverse("admin:koherent_assignation_change", args=[A["long"]]))
book_history = http.get(reverse("admin:shelf_book_history", args=[stage1["ids"]["dune"]]))
facts["admin"] = {
    "list_status": listing.status_code,
    "list_names": [key for key, value in A.items() if value in listing.content.decode()],
    "detail_status": detail.status_code,
    "detail_mentions_dune": "Dune" in detail.content.decode(),
    "book_history_status": book_history.status_code,
    "book_history_shows_app": "bob-scanner" in book_history.content.decode(),
}


# 5. GraphQL: Koherent's query fields on a 0.2.0 assignation.
@strawberry.type
class Query(KoherentQuery):
    pass


schema = strawberry.Schema(query=Query, extensions=[KoherentExtension])
request = RequestFactory().post("/graphql")
request.user = admin_user
result = schema.execute_sync(
    "query($id: ID!) { assignation(id: $id) { id app origin user { username } "
    "changes { entries { kind modelLabel app userId } } } }",
    variable_values={"id": A["long"]},
    context_value={"request": request},
)
facts["graphql"] = {"errors": [str(e) for e in result.errors or ()], "data": result.data}

# 6. revert_assignation on bob's 0.2.0 assignation (an update and a delete).
reverted = revert_assignation(A["bob"])
facts["revert"] = {
    "restored": reverted.restored,
    "recreated": reverted.recreated,
    "dune_pages": Book.objects.get(pk=stage1["ids"]["dune"]).pages,
    "emma_back": Book.objects.filter(pk=stage1["ids"]["emma"], title="Emma").exists(),
    "revert_parent": koherent.Assignation.objects.get(pk=reverted.revert_assignation_id).parent_id,
}

# 7. New writes are stamped; a write without a context right after is not.
alice = User.objects.get(sub="alice")
with koherent.assignation(user=alice, app="alice-lab-app", origin="script") as ctx:
    Library.objects.create(name="New wing")
new_row = Library.provenance.latest("history_id")
Library.objects.create(name="Unstamped")
bare_row = Library.provenance.latest("history_id")
facts["new_write"] = {
    "assignation": [new_row.assignation_id, ctx.assignation_id],
    "user_pk": new_row.user_pk,
    "app": new_row.app,
    "alice": str(alice.pk),
    "record": koherent.Assignation.objects.filter(pk=ctx.assignation_id).exists(),
    "bare": [bare_row.assignation_id, bare_row.user_pk, bare_row.app],
}
json.dump(facts, sys.stdout, default=str)
