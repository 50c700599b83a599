"""Every use of Django's private internals, in one place (internal).

Koherent leans on a few attributes and methods Django does not document. Each is reached
through a function here, so that a new Django release is checked against this one module.
"""

from __future__ import annotations

__all__: list[str] = []


# -- requests ----------------------------------------------------------------------------------


# -- transactions and connections --------------------------------------------------------------


# -- inserts -----------------------------------------------------------------------------------


# -- deletion ----------------------------------------------------------------------------------
