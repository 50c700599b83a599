"""The example shop's Django project. Importing it loads the Celery app, so that tasks sent by
the web process go through the app Koherent is installed on."""

from example.celery import app as celery_app

__all__ = ["celery_app"]
