"""Kept so that ``import koherent.signal`` (the idiom of Koherent's earlier docs) still works.

It does nothing: Koherent wires itself in its ``AppConfig`` when ``"koherent"`` is in
``INSTALLED_APPS``. koherent 0.2.0's own module was ``koherent.signals`` (plural), kept
(deprecated) in :mod:`koherent.signals`.
"""
