"""Stage 1, run by koherent 0.2.0 in its own environment: write history through 0.2.0's API.

* over GraphQL, the way 0.2.0 services ran (kante ``HttpContext``, authentikate's extension
  authenticating a static token, 0.2.0's ``KoherentExtension`` reading ``x-assignation-id``):
  a 150-character assignation by alice through her client, and another by bob through his,
  with an update and a delete;
* in plain Django code, with 0.2.0's context variables (``koherent.vars`` for the assignation,
  ``authentikate.vars`` for the user and client, as authentikate's extension sets them);
* a change without any context.

Prints one JSON document: the ids and what every history row holds, for stage 2 to compare.
"""

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_project.settings")
django.setup()

from authentikate.models import Client, User  # noqa: E402
from authentikate.vars import client_var, user_var  # noqa: E402
from django.db import connection  # noqa: E402
from legacy_project.client import data, run  # noqa: E402
from legacy_project.schema import schema  # noqa: E402
from shelf.models import Book, Library  # noqa: E402

import koherent  # noqa: E402
from koherent.vars import current_assignation_id  # noqa: E402

assert not hasattr(koherent, "HistoryField"), "stage 1 must run koherent 0.2.0"

LONG = ("import-" + "0123456789abcdef" * 10)[:150]
BOB = "5b9e2f64-0c1d-4b6e-9a55-7f3c2d1e0a9b"
SCRIPT = "script-3f1c9a"

lib = data(
    run(schema, 'mutation { createLibrary(name: "Main") }', token="alice-token", assignation=LONG)
)["createLibrary"]
dune = data(
    run(
        schema,
        'mutation($l: ID!) { createBook(libraryId: $l, title: "Dune", pages: 412) }',
        token="alice-token",
        assignation=LONG,
        l=lib,
    )
)["createBook"]
emma = data(
    run(
        schema,
        'mutation($l: ID!) { createBook(libraryId: $l, title: "Emma", pages: 300) }',
        token="alice-token",
        assignation=LONG,
        l=lib,
    )
)["createBook"]
loan = data(
    run(
        schema,
        'mutation($b: ID!) { lendBook(bookId: $b, note: "two weeks") }',
        token="alice-token",
        assignation=LONG,
        b=dune,
    )
)["lendBook"]

data(
    run(
        schema,
        "mutation($b: ID!) { updateBook(bookId: $b, pages: 500) }",
        token="bob-token",
        assignation=BOB,
        b=dune,
    )
)
data(
    run(
        schema,
        "mutation($b: ID!) { deleteBook(bookId: $b) }",
        token="bob-token",
        assignation=BOB,
        b=emma,
    )
)

# Plain Django code under 0.2.0's context variables.
alice = User.objects.get(sub="alice")
alice_client = Client.objects.get(client_id="alice-lab-app")
tokens = (current_assignation_id.set(SCRIPT), user_var.set(alice), client_var.set(alice_client))
annex = Library.objects.create(name="Annex")
annex.name = "Annex (east)"
annex.save()
current_assignation_id.reset(tokens[0])
user_var.reset(tokens[1])
client_var.reset(tokens[2])

# No context at all.
orphan = Library.objects.create(name="Orphan")

rows = {}
with connection.cursor() as cursor:
    for table in ("shelf_historicallibrary", "shelf_historicalbook", "shelf_historicalloan"):
        cursor.execute(
            f"SELECT history_id, id, history_type, history_user_id, client_id, assignation_id "
            f"FROM {table} ORDER BY history_id"
        )
        rows[table] = [list(r) for r in cursor.fetchall()]
    cursor.execute("SELECT id, client_id FROM authentikate_client ORDER BY id")
    clients = {str(pk): client_id for pk, client_id in cursor.fetchall()}
    cursor.execute("SELECT id, sub FROM authentikate_user ORDER BY id")
    users = {sub: pk for pk, sub in cursor.fetchall()}

json.dump(
    {
        "assignations": {"long": LONG, "bob": BOB, "script": SCRIPT},
        "ids": {
            "library": lib,
            "dune": dune,
            "emma": emma,
            "loan": loan,
            "annex": annex.pk,
            "orphan": orphan.pk,
        },
        "rows": rows,
        "clients": clients,
        "users": users,
        "book_count": Book.objects.count(),
    },
    sys.stdout,
)
