# proj/celery.py
import os

from celery import Celery

import koherent.celery

# The worker needs Django's settings before the app reads them (`celery -A proj worker`
# does not go through manage.py).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
koherent.celery.install(app)
