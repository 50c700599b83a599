"""A GraphQL service as koherent 0.2.0 users built it: kante contexts, authentikate's
extension authenticating, koherent's extension reading the assignation header.

The same module runs under koherent 0.2.0 and under this version (``KoherentExtension`` is
importable from ``koherent.strawberry`` in both).
"""

import strawberry
from asgiref.sync import sync_to_async
from authentikate.strawberry.extension import AuthentikateExtension
from kante.types import Info
from shelf.models import Book, Library, Loan

from koherent.strawberry import KoherentExtension


@strawberry.type
class Query:
    @strawberry.field
    def ping(self) -> str:
        return "pong"


def _create_library(name: str) -> str:
    return str(Library.objects.create(name=name).pk)


def _create_book(library_id: str, title: str, pages: int) -> str:
    return str(Book.objects.create(library_id=library_id, title=title, pages=pages).pk)


def _update_book(book_id: str, pages: int) -> str:
    book = Book.objects.get(pk=book_id)
    book.pages = pages
    book.save()
    return str(book.pk)


def _delete_book(book_id: str) -> bool:
    Book.objects.get(pk=book_id).delete()
    return True


def _lend_book(book_id: str, user: object, note: str) -> str:
    return str(Loan.objects.create(book_id=book_id, borrower=user, note=note).pk)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_library(self, name: str) -> strawberry.ID:
        return strawberry.ID(await sync_to_async(_create_library)(name))

    @strawberry.mutation
    async def create_book(
        self, library_id: strawberry.ID, title: str, pages: int
    ) -> strawberry.ID:
        return strawberry.ID(await sync_to_async(_create_book)(library_id, title, pages))

    @strawberry.mutation
    async def update_book(self, book_id: strawberry.ID, pages: int) -> strawberry.ID:
        return strawberry.ID(await sync_to_async(_update_book)(book_id, pages))

    @strawberry.mutation
    async def delete_book(self, book_id: strawberry.ID) -> bool:
        return await sync_to_async(_delete_book)(book_id)

    @strawberry.mutation
    async def lend_book(self, info: Info, book_id: strawberry.ID, note: str) -> strawberry.ID:
        user = info.context.request.user
        return strawberry.ID(await sync_to_async(_lend_book)(book_id, user, note))


def make_schema(*extensions: object) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=list(extensions or (AuthentikateExtension, KoherentExtension)),
    )


schema = make_schema()
