"""Stage 3, run by this version in the 0.2.0 environment (authentikate, kante 1.1.0): the
0.2-style GraphQL service keeps stamping, and refuses what it cannot stamp.

Prints one JSON document of facts for the test to check.
"""

import json
import os
import sys
import types
import uuid
import warnings

import django

warnings.simplefilter("ignore", DeprecationWarning)  # the project's own 0.2.0 names
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "legacy_project.settings")
django.setup()

import asyncio  # noqa: E402

from authentikate.strawberry.extension import AuthentikateExtension  # noqa: E402
from kante.context import UniversalRequest, WsContext  # noqa: E402
from legacy_project.client import run  # noqa: E402
from legacy_project.schema import make_schema, schema  # noqa: E402
from shelf.models import Library  # noqa: E402

import koherent  # noqa: E402
from koherent.strawberry import KoherentExtension  # noqa: E402
from koherent.vars import current_assignation_id  # noqa: E402

assert hasattr(koherent, "HistoryField"), "stage 3 must run this version of koherent"
facts: dict = {"koherent": koherent.__file__}


def last_row() -> list:
    row = Library.provenance.latest("history_id")
    return [row.history_id, row.assignation_id, row.user_pk, row.app, row.history_user_id]


def outcome(result: object) -> dict:
    errors = result.errors or []
    return {
        "errors": [str(e) for e in errors],
        "codes": [(e.extensions or {}).get("code") for e in errors],
        "data": result.data,
    }


named = f"kante-{uuid.uuid4()}"
facts["named"] = named
facts["named_op"] = outcome(
    run(
        schema,
        'mutation { createLibrary(name: "Kante named") }',
        token="bob-token",
        assignation=named,
    )
)
facts["named_row"] = last_row()

facts["fresh_op"] = outcome(
    run(
        schema,
        'mutation { createLibrary(name: "Kante fresh") }',
        token="alice-token",
        assignation=None,
    )
)
facts["fresh_row"] = last_row()

before = Library.provenance.count()
wrong_order = make_schema(KoherentExtension, AuthentikateExtension)
facts["wrong_order_op"] = outcome(
    run(
        wrong_order,
        'mutation { createLibrary(name: "Wrong order") }',
        token="alice-token",
        assignation=None,
    )
)
# A context Koherent cannot read (no authentikate in front, which would refuse it first).
unreadable = asyncio.run(
    make_schema(KoherentExtension).execute(
        'mutation { createLibrary(name: "Unreadable") }',
        context_value=types.SimpleNamespace(request=types.SimpleNamespace(token="x")),
    )
)
facts["unreadable_op"] = outcome(unreadable)
# A mutation over a kante websocket: refused, as 0.2.0 refused it (one connection, many
# operations: their changes could not be told apart).
ws_context = WsContext(
    request=UniversalRequest(_extensions={}),
    connection_params={"token": "alice-token", "x-assignation-id": "over-a-websocket"},
    consumer=None,
)
facts["websocket_op"] = outcome(
    asyncio.run(
        schema.execute('mutation { createLibrary(name: "Over ws") }', context_value=ws_context)
    )
)
facts["websocket_query"] = outcome(
    asyncio.run(schema.execute("{ ping }", context_value=ws_context))
)
facts["refused_rows_written"] = Library.provenance.count() - before

# 0.2.0's context variable, in plain code, under this version.
token = current_assignation_id.set("plain-02-code")
Library.objects.create(name="Plain 0.2 code")
current_assignation_id.reset(token)
facts["vars_row"] = last_row()
facts["vars_record"] = koherent.Assignation.objects.filter(pk="plain-02-code").exists()
json.dump(facts, sys.stdout, default=str)
