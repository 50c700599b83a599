from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchmarks.contenders.plain"
    label = "bench_plain"
    verbose_name = "Plain Django (no history)"
    default_auto_field = "django.db.models.BigAutoField"
