from django.apps import AppConfig


class UndoappConfig(AppConfig):
    name = "tests.undoapp"
    label = "undoapp"
    default_auto_field = "django.db.models.BigAutoField"
