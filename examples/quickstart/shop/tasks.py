# shop/tasks.py
import logging

from celery import shared_task

from shop.models import Order

logger = logging.getLogger(__name__)


@shared_task
def confirm(order_id):
    order = Order.objects.get(pk=order_id)
    order.status = "confirmed"
    order.save()  # stamped with the request's user, app and assignation, and this task's id
    logger.info("confirmed order %s", order_id)
