"""Progress lines: at most one per interval, rows, tokens, rates, share done and ETA."""

from __future__ import annotations

import logging

from distill_data.progress import Progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_line_per_interval_with_rate_share_and_eta(caplog):
    clock = Clock()
    progress = Progress("encode x", total_rows=1000, every=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="distill_data"):
        clock.now += 10
        progress.update(100, 50_000)                      # 10 s: too early for a line
        clock.now += 20
        progress.update(150, 75_000)                      # 30 s since the start: a line
        clock.now += 5
        progress.update(50, 25_000)                       # 5 s after the last line: none
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["encode x: 250 rows of 1,000, 125.00k tokens, 8 rows/s, 4.17k tokens/s, "
                     "25.0% done, ETA 1m30s, elapsed 30s"]


def test_a_token_budget_gives_the_eta_and_a_scan_shows_no_tokens(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO, logger="distill_data"):
        budget = Progress("code", total_tokens=1_000_000, every=15, clock=clock)
        clock.now += 60
        budget.update(3000, 250_000)
        scan = Progress("scan s.parquet", total_rows=10, clock=clock)
        scan.update(10)
        scan.done()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == ("code: 3,000 rows, 250.00k tokens of 1.00M, 50 rows/s, 4.17k tokens/s, 25.0% done, "
                        "ETA 3m00s, elapsed 1m00s")
    assert lines[1].startswith("scan s.parquet: 10 rows of 10, ") and "tokens" not in lines[1]
    assert lines[1].endswith("100.0% done, ETA 0s, elapsed 0s (done)")
