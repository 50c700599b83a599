"""The ASGI application the real-server tests run under uvicorn.

Django's ASGI handler behind a thin pure-ASGI layer that

* reports, in ``X-Entry-Assignation``, the audit context the request's task *started* with
  (before anything set it): on a clean server always empty;
* for requests carrying ``X-Outer-Assignation``, runs Django inside
  ``koherent.context(assignation_id=...)``, as an outer ASGI middleware setting context would
  (and resetting it properly). Django reads the request body inside that scope, so a body over
  uvicorn's 64 KiB buffer makes the request task resume reading with the value set, and the
  next request on the keep-alive connection starts with it (CPython issue 140947): the
  middleware's overwrite at entry is what keeps it out of the view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.asgi import get_asgi_application

import koherent

django_application = get_asgi_application()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await django_application(scope, receive, send)
        return
    entry = koherent.current().assignation_id or ""
    outer = dict(scope["headers"]).get(b"x-outer-assignation", b"").decode()

    async def report_entry(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-entry-assignation", entry.encode())]
            message = {**message, "headers": headers}
        await send(message)

    if outer:
        with koherent.context(assignation_id=outer):
            await django_application(scope, receive, report_entry)
    else:
        await django_application(scope, receive, report_entry)
