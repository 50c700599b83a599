"""50 more models tracked by Koherent that no operation of the query data set touches.

Installed only where ``KOHERENT_BENCH_WIDE=1`` (the ``prepare`` step, so every benchmark
database has their tables, and the ``query_wide`` scenario, whose project therefore tracks
63 models instead of 13). Their tables stay empty.
"""

from __future__ import annotations

from benchmarks.contenders.common import make_model
from koherent.fields import HistoryField

#: How many more tracked models the wide project has.
EXTRA_MODELS = 50

EXTRA = [
    make_model(__name__, f"Extra{i}", {"history": HistoryField()}) for i in range(EXTRA_MODELS)
]
globals().update({model.__name__: model for model in EXTRA})
