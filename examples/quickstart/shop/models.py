# shop/models.py
from django.db import models

from koherent.fields import HistoryField


class Order(models.Model):
    reference = models.CharField(max_length=50)
    status = models.CharField(max_length=20, default="new")
    history = HistoryField()  # simple-history's table, with the audit columns

    def __str__(self):
        return self.reference
