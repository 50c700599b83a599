"""The WSGI application the real-server tests run under gunicorn (gthread worker).

Django's WSGI handler behind a thin WSGI layer that reports, per response,

* ``X-Entry-Assignation``: the audit context the request started with on its thread (always
  empty unless something leaks from an earlier request on that thread);
* ``X-Thread-Previous``: the path of the previous request the same thread served, read from a
  plain ``ContextVar`` this layer sets and never resets. Non-empty values prove that the
  server reuses threads and that a set without reset does leak on them: the negative control
  for Koherent's values, which must not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from django.core.wsgi import get_wsgi_application

import koherent

django_application = get_wsgi_application()

_previous_path: ContextVar[str] = ContextVar("previous_path_on_this_thread", default="")


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    entry = koherent.current().assignation_id or ""
    previous = _previous_path.get()
    _previous_path.set(environ.get("PATH_INFO", ""))  # deliberately never reset

    def report(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        headers = [*headers, ("X-Entry-Assignation", entry), ("X-Thread-Previous", previous)]
        return start_response(status, headers, *args)

    return django_application(environ, report)
