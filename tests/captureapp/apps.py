from django.apps import AppConfig


class CaptureappConfig(AppConfig):
    name = "tests.captureapp"
    label = "captureapp"
    default_auto_field = "django.db.models.BigAutoField"
