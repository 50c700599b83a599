# undo.py: python manage.py shell < undo.py
import koherent

for entry in koherent.history_for_assignation("checkout-42"):
    print(entry.date, entry.kind, entry.model_label, entry.object_id, entry.app, entry.task_id)

result = koherent.revert_assignation("checkout-42")  # in one transaction, or refused
print(result.summary())
