from django.apps import AppConfig


class MultidbappConfig(AppConfig):
    name = "tests.multidbapp"
    label = "multidbapp"
    default_auto_field = "django.db.models.BigAutoField"
