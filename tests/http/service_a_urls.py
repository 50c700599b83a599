"""Service A: a view that writes an order and hands the rest of the work to a Celery task,
which calls service B."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

import koherent
from tests import views
from tests.testapp.models import Order


@csrf_exempt
def place_order(request: HttpRequest) -> HttpResponse:
    from tests.http.service_celery import app

    label = request.POST["label"]
    Order.objects.create(reference=f"{label}-a-web")
    result = app.send_task(
        "svc.call_b", (label, request.POST["service_b"], request.POST["service_b_unlisted"])
    )
    return JsonResponse(
        {"task_id": result.id, "assignation_id": koherent.get_current_assignation_id()}
    )


urlpatterns = [
    path("orders/", place_order),
    path("whoami/", views.whoami),
]
