"""The page ``make soak`` writes from its figures."""

from __future__ import annotations

from tests.soak.render import merge, render


def test_each_scenario_gets_a_table_of_its_figures_the_last_run_winning() -> None:
    records = [
        {"scenario": "graphql-http", "at": "2026-01-01 10:00:00 UTC", "requests": 10},
        {"scenario": "unknown-one", "at": "2026-01-01 10:05:00 UTC", "lost": 0},
        {
            "scenario": "graphql-http",
            "at": "2026-01-01 11:00:00 UTC",
            "python": "3.11.7",
            "requests": 1000,
            "misattributions": 0,
            "reasons": {"unsigned": 3},
        },
    ]
    page = render(records)
    assert page.index("## graphql-http") < page.index("## unknown-one")
    assert "| requests | 1,000 |" in page
    assert "| requests | 10 |" not in page
    assert "| misattributions | 0 |" in page
    assert "| reasons | unsigned: 3 |" in page
    assert "python" not in page.split("## graphql-http")[1].split("## unknown-one")[0]
    assert "Run started: 2026-01-01 10:05:00 UTC" in page


def test_a_partial_run_keeps_the_other_sections_of_the_page_with_their_date() -> None:
    previous = render(
        [
            {"scenario": "graphql-http", "at": "2026-01-01 10:00:00 UTC", "requests": 10},
            {"scenario": "limits", "at": "2026-01-01 10:01:00 UTC", "fields": 6},
        ]
    )
    page = render(
        [
            {
                "scenario": "graphql-http",
                "at": "2026-02-01 10:00:00 UTC",
                "size": "medium",
                "requests": 500,
            }
        ]
    )
    merged = merge(page, previous)
    assert "| requests | 500 |" in merged
    assert "| requests | 10 |" not in merged
    assert merged.count("## graphql-http") == 1
    assert "Run at 2026-02-01 10:00:00 UTC, medium size." in merged
    limits = merged.split("## limits")[1]
    assert "Run at 2026-01-01 10:01:00 UTC, full size." in limits
    assert "| fields | 6 |" in limits
    assert merge(page, page) == page
    # A page from before sections gave their run: its sections are the full run's.
    old = previous.replace("Run at 2026-01-01 10:01:00 UTC, full size.\n\n", "")
    assert "Run at 2026-01-01 10:00:00 UTC, full size." in merge(page, old).split("## limits")[1]
