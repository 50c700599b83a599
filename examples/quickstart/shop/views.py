# shop/views.py
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from shop.models import Order
from shop.tasks import confirm


@csrf_exempt  # an API for clients without a session; keep CSRF for browser forms
@require_POST
def place_order(request):
    order = Order.objects.create(reference=request.POST["reference"])
    confirm.delay(order.pk)  # the task runs in this request's audit context
    return JsonResponse({"order": order.pk}, status=201)
