from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchmarks.contenders.simplehistory"
    label = "bench_simplehistory"
    verbose_name = "django-simple-history"
    default_auto_field = "django.db.models.BigAutoField"
