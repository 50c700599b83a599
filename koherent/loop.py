"""Whether the calling code runs in an event loop's thread.

Async code cannot evaluate a lazy ``request.user`` or run a query: the places that would
(reading a request's user, checking access to an assignation, the GraphQL extension) ask here
first.
"""

from __future__ import annotations

import asyncio


def in_event_loop() -> bool:
    """True when an asyncio event loop is running in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
