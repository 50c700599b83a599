from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchmarks.contenders.koherentapp"
    label = "bench_koherent"
    verbose_name = "Koherent"
    default_auto_field = "django.db.models.BigAutoField"
