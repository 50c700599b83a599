"""``KoherentExtension``: every GraphQL operation runs in its request's audit context.

Add the class (not an instance: strawberry makes one per operation) to the schema::

    schema = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=[KoherentExtension, DjangoOptimizerExtension],
    )

For each operation the extension

1. works out the context from what the operation runs for (:mod:`koherent.strawberry.operation`):
   user, app, and the assignation the operation names (``extensions.koherent.assignationId``),
   the request names (the ``X-Assignation-ID`` header) or, over a websocket, the connection
   names (its ``connection_init`` parameters) — with the code the middleware uses;
2. once the operation type is known, opens a fresh assignation when nothing named one and
   ``KOHERENT["GRAPHQL_FRESH_ASSIGNATION"]`` says so (by default for mutations), and refuses a
   mutation over a websocket unless ``KOHERENT["GRAPHQL_WEBSOCKET_MUTATIONS"]`` allows it (then
   each gets its own assignation), and refuses an operation whose client-named assignation
   its user may not join (``KOHERENT["ASSIGNATION_ACCESS"]``, :mod:`koherent.access`: one
   query, awaited in async execution, none when the middleware checked the same request);
3. sets that context for the whole operation, overwriting whatever was in effect (so
   ``KoherentMiddleware``'s context for the same request is replaced by the operation's), and
   restores the previous one in a ``finally``;
4. restores the operation's context after each field, so a resolver that opens a context of
   its own and does not close it cannot leak it to the fields resolved after it;
5. reports the operation's assignation in the result (``extensions.koherent.assignationId``)
   and, over HTTP, in the ``X-Assignation-ID`` response header (an operation whose
   ``revertAssignation`` reverted reports the revert's assignation in ``extensions``: the one
   its rows are written under, ``revertAssignationId``, not the operation's own);
6. announces the tracked objects of each field's value (a list, a query set, a relay
   connection, and what Django loaded with them) to the operation's loaders, so that
   ``history_field()`` on a list of them is one query per model, in sync execution too
   (:meth:`koherent.strawberry.loaders.Loaders.register_objects`).

An operation whose ``context_value`` carries no request (``schema.execute(query)`` in a script)
runs in the caller's context, untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar, Token
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from koherent import access
from koherent._config import fresh_assignation_mode, get_setting
from koherent._django import cached_async_user
from koherent._logging import get_logger
from koherent.context import (
    AuditContext,
    new_assignation_id,
    peek,
    reset_context,
    set_context,
)
from koherent.exceptions import AssignationAccessDenied, InvalidRequestContext
from koherent.loop import in_event_loop
from koherent.strawberry.loaders import Loaders, close_loaders, loaders_in_effect, open_loaders
from koherent.strawberry.operation import (
    HTTP,
    NAMED_BY_OPERATION,
    WEBSOCKET,
    OperationSource,
    source_of,
    unresolved_async_user,
)

if TYPE_CHECKING:
    from django.http import HttpRequest
    from graphql import GraphQLResolveInfo
    from strawberry.types import ExecutionContext

logger = get_logger("koherent")

#: The extension of the operation being executed (resolvers report to it).
_operation: ContextVar[KoherentExtension | None] = ContextVar(
    "koherent_graphql_operation", default=None
)


def _leave_operation(token: Token[KoherentExtension | None]) -> None:
    """Restore the operation in effect before (tolerant, like contexts: a subscription
    finalised in another ``contextvars.Context`` cannot use its token)."""
    try:
        _operation.reset(token)
    except (ValueError, RuntimeError):
        previous = token.old_value
        _operation.set(None if previous is Token.MISSING else previous)


def report_assignation_id(assignation_id: str) -> None:
    """Report ``assignation_id`` in ``extensions.koherent.assignationId`` of the current
    operation's result, instead of the operation's own assignation (a revert's rows are
    written under its own assignation). Does nothing outside an operation."""
    extension = _operation.get()
    if extension is not None:
        extension._reported_assignation_id = assignation_id


#: ``extensions.code`` of the error refusing a mutation over a websocket.
WEBSOCKET_MUTATION_REFUSED = "KOHERENT_WEBSOCKET_MUTATION_REFUSED"
#: ``extensions.code`` of the error refusing an operation whose request names a bad context.
INVALID_AUDIT_CONTEXT = "KOHERENT_INVALID_AUDIT_CONTEXT"
#: ``extensions.code`` of the error refusing an operation that names an assignation its user
#: may not join (``KOHERENT["ASSIGNATION_ACCESS"]``).
ASSIGNATION_ACCESS_DENIED = "KOHERENT_ASSIGNATION_ACCESS_DENIED"


class KoherentExtension(SchemaExtension):
    """Run each GraphQL operation in the audit context of its request or connection.

    Keyword-only options (for a per-schema variant, subclass and set them as class
    attributes, or register ``functools.partial(KoherentExtension, ...)``):

    ``fresh_assignation``
        ``"mutation"``, ``"operation"`` or ``"never"``: which operations that name no
        assignation get a fresh one. Default: ``KOHERENT["GRAPHQL_FRESH_ASSIGNATION"]``.
    ``report_assignation``
        Put the operation's assignation id in the result's ``extensions`` and the HTTP
        response header. Default: ``True``.

    Examples:
        >>> schema = strawberry.Schema(query=Query, extensions=[KoherentExtension])
    """

    fresh_assignation: str | None = None
    report_assignation: bool = True

    def __init__(
        self,
        *,
        execution_context: ExecutionContext | None = None,
        fresh_assignation: str | None = None,
        report_assignation: bool | None = None,
    ) -> None:
        if execution_context is not None:
            self.execution_context = execution_context
        if fresh_assignation is not None:
            self.fresh_assignation = fresh_assignation
        if report_assignation is not None:
            self.report_assignation = report_assignation
        self._source: OperationSource | None = None
        self._refusal: GraphQLError | None = None
        self._user_request: HttpRequest | None = None
        self._assignation_id: str | None = None
        self._reported_assignation_id: str | None = None
        self._ctx: AuditContext | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> KoherentExtension:
        # Strawberry makes one extension per operation. In async execution (a running event
        # loop) it is of a subclass whose on_execute is async, so that checking the access
        # to a named assignation can await its query; sync execution cannot take async hooks.
        if in_event_loop() and not issubclass(cls, _AsyncExecution):
            cls = _async_variant(cls)
        return super().__new__(cls)

    # -- lifecycle -------------------------------------------------------------------------
    def on_operation(self) -> Iterator[None]:
        loaders = open_loaders()
        operation = _operation.set(self)
        try:
            yield from self._in_operation_context()
        finally:
            _leave_operation(operation)
            close_loaders(loaders)

    def _in_operation_context(self) -> Iterator[None]:
        execution_context = self.execution_context
        try:
            extensions = getattr(execution_context, "operation_extensions", None)
            source = source_of(execution_context.context, extensions)
        except InvalidRequestContext as error:
            # Refused in on_execute, before any resolver runs: an error raised here would
            # not reach a websocket client as a GraphQL error.
            logger.warning("koherent: refused a GraphQL operation: %s", error)
            self._refusal = GraphQLError(str(error), extensions={"code": INVALID_AUDIT_CONTEXT})
            yield
            return
        self._source = source
        self._user_request = unresolved_async_user(execution_context.context)
        if source.context is None:
            yield
            return
        token = set_context(source.context)
        try:
            yield
        finally:
            reset_context(token)

    def on_execute(self) -> Iterator[None]:
        joining = self._before_execute()
        if joining is not None:
            try:
                access.check_request(joining[0], joining[1])
            except AssignationAccessDenied as error:
                raise _denied(error) from None
        self._enter_operation_context()
        yield

    def _before_execute(self) -> tuple[Any, str] | None:
        """Refuse what must be refused; work out the operation's context. Returns the request
        and the assignation whose access must be checked, when the client named it."""
        self._refuse_shared_instance(self.execution_context)
        if self._refusal is not None:
            raise self._refusal
        source = self._source
        if source is None or source.context is None:
            return None
        ctx = self._operation_context(source, self.execution_context.operation_type)
        self._ctx = ctx
        named = source.context.assignation_id
        if source.named_by is None or named is None or ctx.assignation_id != named:
            return None  # nothing named, or the operation got a fresh assignation instead
        return source.request, named

    def _enter_operation_context(self) -> None:
        source, ctx = self._source, self._ctx
        if source is None or ctx is None:
            return
        # Set for the rest of the operation (a subscription's events included): the token
        # taken in on_operation restores what was in effect before the operation.
        set_context(ctx)
        self._assignation_id = ctx.assignation_id
        self._report(source, ctx)

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        request = self._user_request
        if request is not None and cached_async_user(request) is None:
            return self._resolve_after_user(request, _next, root, info, *args, **kwargs)
        # Whatever a resolver leaves in effect is undone when it returns, so the fields
        # resolved after it (siblings, later mutation fields) see the operation's context.
        token = set_context(peek())
        try:
            result = _next(root, info, *args, **kwargs)
        finally:
            reset_context(token)
        loaders = loaders_in_effect()
        if isawaitable(result):
            return _guarded(result, loaders)
        if loaders is not None:
            # The objects of a list, known before their fields resolve (history_field()).
            loaders.register_objects(result)
        return result

    async def _resolve_after_user(
        self,
        request: HttpRequest,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Resolve the request's user (async execution), then the field."""
        await request.auser()
        result = self.resolve(_next, root, info, *args, **kwargs)
        return (await result) if isawaitable(result) else result

    def get_results(self) -> dict[str, Any]:
        reported = self._reported_assignation_id or self._assignation_id
        if not self.report_assignation or reported is None:
            return {}
        return {"koherent": {"assignationId": reported}}

    # -- helpers ---------------------------------------------------------------------------
    def _operation_context(
        self, source: OperationSource, operation_type: OperationType
    ) -> AuditContext:
        ctx = source.context
        assert ctx is not None
        is_mutation = operation_type is OperationType.MUTATION
        if source.transport == WEBSOCKET and is_mutation:
            if not get_setting("GRAPHQL_WEBSOCKET_MUTATIONS"):
                raise GraphQLError(
                    "Mutations are not accepted over a websocket: one connection carries "
                    "many operations, so their changes could not be told apart. Send the "
                    "mutation over HTTP, or set KOHERENT['GRAPHQL_WEBSOCKET_MUTATIONS'] = "
                    "True to give each websocket mutation an assignation of its own.",
                    extensions={"code": WEBSOCKET_MUTATION_REFUSED},
                )
            # Each mutation gets its own assignation, never the connection's.
            if source.named_by != NAMED_BY_OPERATION:
                return ctx.evolve(assignation_id=new_assignation_id())
            return ctx
        if source.named_by is None and self._wants_fresh(is_mutation):
            return ctx.evolve(assignation_id=new_assignation_id())
        return ctx

    def _wants_fresh(self, is_mutation: bool) -> bool:
        mode = fresh_assignation_mode(
            self.fresh_assignation or get_setting("GRAPHQL_FRESH_ASSIGNATION")
        )
        return mode == "operation" or (mode == "mutation" and is_mutation)

    def _report(self, source: OperationSource, ctx: AuditContext) -> None:
        """Name the operation's assignation in the HTTP response header (when not named yet)."""
        response = source.response
        if (
            not self.report_assignation
            or source.transport != HTTP
            or ctx.assignation_id is None
            or response is None
            or not get_setting("RESPONSE_HEADER")
        ):
            return
        header: str = get_setting("ASSIGNATION_HEADER")
        if hasattr(response, "has_header"):  # Django's response
            if not response.has_header(header):
                response[header] = ctx.assignation_id
            return
        headers = getattr(response, "headers", None)  # strawberry's Channels response
        if isinstance(headers, dict) and not any(k.lower() == header.lower() for k in headers):
            headers[header] = ctx.assignation_id

    def _refuse_shared_instance(self, execution_context: ExecutionContext) -> None:
        extensions = getattr(execution_context.schema, "extensions", ())
        if any(extension is self for extension in extensions):
            logger.error(
                "koherent: KoherentExtension was registered as an instance; register the class"
            )
            raise ImproperlyConfigured(
                "KoherentExtension must be registered as a class (extensions="
                "[KoherentExtension]), not as an instance: one instance shared by concurrent "
                "operations would run one request's work in another's audit context."
            )


class _AsyncExecution(KoherentExtension):
    """What :class:`KoherentExtension` is in async execution: ``on_execute`` awaits the check."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        joining = self._before_execute()
        if joining is not None:
            try:
                await access.acheck_request(joining[0], joining[1])
            except AssignationAccessDenied as error:
                raise _denied(error) from None
        self._enter_operation_context()
        yield


_async_variants: dict[type[KoherentExtension], type[KoherentExtension]] = {}


def _async_variant(cls: type[KoherentExtension]) -> type[KoherentExtension]:
    """``cls`` with the async ``on_execute`` (one class per configured subclass)."""
    if cls is KoherentExtension:
        return _AsyncExecution
    variant = _async_variants.get(cls)
    if variant is None:
        variant = type(cls.__name__, (_AsyncExecution, cls), {"__module__": cls.__module__})
        _async_variants[cls] = variant
    return variant


def _denied(error: AssignationAccessDenied) -> GraphQLError:
    logger.warning("koherent: refused a GraphQL operation: %s", error)
    return GraphQLError(str(error), extensions={"code": ASSIGNATION_ACCESS_DENIED})


async def _guarded(result: Awaitable[Any], loaders: Loaders | None) -> Any:
    token = set_context(peek())
    try:
        value = await result
    finally:
        reset_context(token)
    if loaders is not None:
        if isinstance(value, QuerySet) and value._result_cache is None:
            # What graphql-core's `async for` over it would do next, done first: its
            # objects (and those prefetched with them) are known before their fields resolve.
            await sync_to_async(value._fetch_all)()
        loaders.register_objects(value, evaluate=False)
    return value
