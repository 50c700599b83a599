from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchmarks.contenders.koherenttrigger"
    label = "bench_koherenttrigger"
    verbose_name = "Koherent, trigger capture"
    default_auto_field = "django.db.models.BigAutoField"
