"""Soak, crash, restart and hostile-input scenarios.

Each scenario runs at a reduced size in the normal suite and at full size under ``make soak``
(``KOHERENT_SOAK=full``). See :mod:`tests.soak.support`.
"""
