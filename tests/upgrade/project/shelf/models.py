"""Tracked models written the koherent 0.2.0 way: ``ProvenanceField`` from ``koherent.fields``.

The same file runs under koherent 0.2.0 and, unchanged, under this version (where the 0.2.0
names warn): an upgraded project need not touch its models before it migrates.
"""

from django.conf import settings
from django.db import models

from koherent.fields import HistoricForeignKey, ProvenanceField


class Library(models.Model):
    name = models.CharField(max_length=100)

    provenance = ProvenanceField()

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    library = HistoricForeignKey(Library, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=200)
    pages = models.IntegerField(default=0)

    provenance = ProvenanceField()

    def __str__(self) -> str:
        return self.title


class Loan(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="loans")
    borrower = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="loans"
    )
    note = models.CharField(max_length=200, blank=True, default="")

    provenance = ProvenanceField()
