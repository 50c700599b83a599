"""A view that enqueues an audited task on the db_worker's queue, for the exit tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from tests.tasks import jobs
from tests.tasks.worker import BACKEND


@csrf_exempt
def enqueue(request: HttpRequest) -> HttpResponse:
    task = jobs.write.using(backend=BACKEND, queue_name=request.GET["queue"])
    result = task.enqueue(request.GET["label"])
    return JsonResponse({"result_id": str(result.id)})


urlpatterns = [path("enqueue/", enqueue)]
