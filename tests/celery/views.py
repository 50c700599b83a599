"""A view that enqueues a task, for the request-to-worker test."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

import koherent
from tests.celery.harness import running_apps


@csrf_exempt
def enqueue(request: HttpRequest) -> HttpResponse:
    app = running_apps[request.GET["worker"]]
    result = app.tasks["kt.write"].delay(request.GET["label"])
    return JsonResponse(
        {"task_id": result.id, "assignation_id": koherent.get_current_assignation_id()}
    )


urlpatterns = [path("enqueue/", enqueue)]
