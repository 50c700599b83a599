"""``KoherentMiddleware``: every request runs in its own audit context.

Add it after ``AuthenticationMiddleware``::

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "koherent.middleware.KoherentMiddleware",
        ...,
    ]

For each request it sets the context (user read late from ``request.user``, app from the
configured resolver, assignation from the ``X-Assignation-ID`` header or a fresh one), always
overwriting whatever the thread or task carried before, and resets it when the response is
returned, also when the view raises. A streaming response's content runs in the request's
context step by step. A malformed header gets HTTP 400 before the view runs, and a header
naming an assignation the request's user may not join (``KOHERENT["ASSIGNATION_ACCESS"]``,
by default one another user opened) gets HTTP 403.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import FileResponse, JsonResponse, StreamingHttpResponse

from koherent._config import get_setting
from koherent._logging import get_logger
from koherent.context import (
    AuditContext,
    reset_context,
    run_async_generator_in,
    run_generator_in,
    set_context,
)
from koherent.exceptions import AssignationAccessDenied, InvalidRequestContext
from koherent.resolvers import aprepare_request, context_from_request

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

logger = get_logger("koherent")


def _iterate(iterable: Any) -> Generator[Any, None, None]:
    yield from iterable


async def _aiterate(iterable: Any) -> AsyncGenerator[Any, None]:
    async for item in iterable:
        yield item


class KoherentMiddleware:
    """Open the audit context of each request (sync and async capable)."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def get_context(self, request: HttpRequest) -> AuditContext:
        """The request's audit context. Override to add or change what it holds."""
        return context_from_request(request, defer_anonymous=True)

    def refuse(self, request: HttpRequest, error: InvalidRequestContext) -> HttpResponseBase:
        """The response to a request whose context is refused: HTTP 400 for a malformed value,
        403 for an assignation the user may not join (``error.status_code``)."""
        logger.warning(
            "koherent: refused %s %s: %s", request.method, request.path, error, exc_info=False
        )
        return JsonResponse(
            {"error": error.code, "detail": str(error)},
            status=error.status_code,
        )

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        """Answer 403 when the view's first write finds that its late-authenticated user may not
        join the assignation the request names (see :class:`koherent.access.CheckedLaterUserRef`).
        """
        if isinstance(exception, AssignationAccessDenied):
            return self.refuse(request, exception)
        return None

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        try:
            ctx = self.get_context(request)
        except InvalidRequestContext as error:
            return self.refuse(request, error)
        token = set_context(ctx)
        try:
            response = self.get_response(request)
        finally:
            reset_context(token)
        return self.finish(response, ctx)  # type: ignore[arg-type]

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            # Resolve the user and the access to a named assignation now: async code cannot
            # evaluate a lazy request.user, nor query, later.
            await aprepare_request(request, defer_anonymous=True)
            ctx = self.get_context(request)
        except InvalidRequestContext as error:
            return self.refuse(request, error)
        token = set_context(ctx)
        try:
            response = await self.get_response(request)  # type: ignore[misc]
        finally:
            reset_context(token)
        return self.finish(response, ctx)

    def finish(self, response: HttpResponseBase, ctx: AuditContext) -> HttpResponseBase:
        """Add the assignation header and keep a streaming body in the request's context."""
        if (
            ctx.assignation_id
            and get_setting("RESPONSE_HEADER")
            and not response.has_header(get_setting("ASSIGNATION_HEADER"))
        ):
            response[get_setting("ASSIGNATION_HEADER")] = ctx.assignation_id
        if isinstance(response, StreamingHttpResponse) and not isinstance(response, FileResponse):
            content = response.streaming_content
            if response.is_async:
                response.streaming_content = run_async_generator_in(ctx, _aiterate(content))
            else:
                response.streaming_content = run_generator_in(ctx, _iterate(content))
        return response
