from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchmarks.contenders.pghistoryapp"
    label = "bench_pghistory"
    verbose_name = "django-pghistory"
    default_auto_field = "django.db.models.BigAutoField"
