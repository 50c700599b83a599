"""The GraphQL tests' client, posting to the sync or the async view, and its results.

The fixtures that give it to tests are in :mod:`tests.graphql.fixtures`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

if TYPE_CHECKING:  # the test client's response types exist in django-stubs only
    from django.test.client import _MonkeyPatchedASGIResponse, _MonkeyPatchedWSGIResponse


@dataclass
class Result:
    """A GraphQL HTTP response: status, headers, ``data``, ``errors`` and ``extensions``."""

    status_code: int
    headers: Any
    body: dict[str, Any]

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.body.get("errors") or []

    @property
    def assignation_id(self) -> str | None:
        """The assignation the result's ``extensions`` name."""
        return ((self.body.get("extensions") or {}).get("koherent") or {}).get("assignationId")


class GraphQLClient:
    """Posts GraphQL operations to the sync or the async view through Django's test clients.

    The async flavour drives ``AsyncClient`` with ``async_to_sync`` from the test's thread, so
    Django's sync work comes back to that thread and sees the test's transaction.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.path = f"/graphql/{mode}/"
        self.client: Client | AsyncClient = Client() if mode == "sync" else AsyncClient()

    def login(self, user: Any) -> None:
        self.client.force_login(user)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        """A plain GET through the same client (a non-GraphQL view, for comparison)."""
        if isinstance(self.client, AsyncClient):
            return async_to_sync(self.client.get)(path, headers=headers or {})
        return self.client.get(path, headers=headers or {})

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> Result:
        body: dict[str, Any] = {"query": query, "variables": variables or {}}
        if extensions is not None:
            body["extensions"] = extensions
        data, content_type = json.dumps(body), "application/json"
        response: _MonkeyPatchedASGIResponse | _MonkeyPatchedWSGIResponse
        if isinstance(self.client, AsyncClient):
            response = async_to_sync(self.client.post)(
                self.path, data, content_type, headers=headers or {}
            )
        else:
            response = self.client.post(self.path, data, content_type, headers=headers or {})
        content = response.content
        return Result(response.status_code, response.headers, json.loads(content or b"{}"))
