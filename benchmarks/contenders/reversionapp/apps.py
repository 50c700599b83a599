from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "benchmarks.contenders.reversionapp"
    label = "bench_reversion"
    verbose_name = "django-reversion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import reversion

        for model in self.get_models():
            reversion.register(model)
