from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchmarks.contenders.koherentwide"
    label = "bench_koherent_wide"
    verbose_name = "Koherent, 50 more tracked models"
    default_auto_field = "django.db.models.BigAutoField"
