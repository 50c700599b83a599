"""The scenarios, in the order ``make bench`` runs them.

Each module has ``run(size, log) -> dict`` (see :mod:`benchmarks.results` for the shape of the
dict) and, when it needs something that may not be installed, ``missing() -> str | None``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    module: str
    #: ``run`` (emptied before the scenario) or ``data`` (the kept query data set).
    database: str = "run"
    #: Whether the project also tracks the 50 extra models of ``contenders/koherentwide``.
    wide: bool = False


SCENARIOS = (
    Scenario("request", "One request, one save", "benchmarks.scenarios.request"),
    Scenario("write", "Write cost", "benchmarks.scenarios.write"),
    Scenario("bulk", "Bulk helpers", "benchmarks.scenarios.bulk"),
    Scenario("update", "update() and bulk_update()", "benchmarks.scenarios.update"),
    Scenario("propagation", "Propagation through Celery", "benchmarks.scenarios.propagation"),
    Scenario("query", "Query by assignation", "benchmarks.scenarios.query", database="data"),
    Scenario(
        "query_wide",
        "Query by assignation, many tracked models",
        "benchmarks.scenarios.query_wide",
        database="data",
        wide=True,
    ),
    Scenario("undo", "Undo", "benchmarks.scenarios.undo"),
    Scenario("graphql", "GraphQL", "benchmarks.scenarios.graphql"),
    Scenario("capture", "Trigger capture", "benchmarks.scenarios.capture"),
)

BY_ID = {scenario.id: scenario for scenario in SCENARIOS}
