# proj/__init__.py: web processes load the Celery app (and Koherent's hooks) with Django
from proj.celery import app as celery_app

__all__ = ["celery_app"]
