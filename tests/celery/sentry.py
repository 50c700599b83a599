"""sentry-sdk with its Celery integration and tracing, sending nothing anywhere."""

from __future__ import annotations

from typing import Any


def init_sentry() -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.transport import Transport

    class DropEverything(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            pass

    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        integrations=[CeleryIntegration()],
        traces_sample_rate=1.0,
        transport=DropEverything,
        default_integrations=False,
    )
