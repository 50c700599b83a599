"""Kept so that ``import koherent.signal``, the koherent 0.2 idiom, still works.

It does nothing: Koherent wires itself in its ``AppConfig`` when ``"koherent"`` is in
``INSTALLED_APPS``.
"""
