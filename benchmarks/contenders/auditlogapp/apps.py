from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchmarks.contenders.auditlogapp"
    label = "bench_auditlog"
    verbose_name = "django-auditlog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        for model in self.get_models():
            auditlog.register(model)
