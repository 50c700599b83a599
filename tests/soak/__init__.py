"""Soak, crash, restart and hostile-input scenarios.

Each scenario runs at a reduced size in the normal suite and at full size under ``make soak``
(``KOHERENT_SOAK=full``), and at a tenth of it with ``KOHERENT_SOAK=medium``. See
:mod:`tests.soak.support`.
"""
