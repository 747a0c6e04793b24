"""Progress lines a person can read in a job log (also a SLURM log file).

`Progress.update(rows, tokens)` is called after each batch; it logs at most every `every`
seconds (and never less often, as long as batches keep coming): rows and tokens so far, their
rate, the share done and an estimate of the time left when the total is known. Logging goes
through the `distill_data` logger to stderr, which Python flushes line by line.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("distill_data")

EVERY_SECONDS = 15.0


def _human(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.2f}{suffix}"
    return f"{value:.0f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Running totals of one long step, logged every `every` seconds.

    `total_rows` / `total_tokens`: what the step will reach when done, if known (a token
    budget, the rows of the files); the ETA uses the first one known.
    """

    def __init__(self, what: str, *, total_rows: int | None = None, total_tokens: int | None = None,
                 every: float = EVERY_SECONDS, clock=time.monotonic):
        self.what = what
        self.total_rows = total_rows
        self.total_tokens = total_tokens
        self.every = every
        self.clock = clock
        self.started = clock()
        self.last = self.started
        self.rows = 0
        self.tokens = 0

    def update(self, rows: int = 0, tokens: int = 0, *, force: bool = False) -> None:
        """Add a batch's rows and tokens; log if `every` seconds passed since the last line."""
        self.rows += rows
        self.tokens += tokens
        now = self.clock()
        if force or now - self.last >= self.every:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        parts = [f"{self.what}: {self.rows:,} rows"]
        if self.total_rows:
            parts[0] += f" of {self.total_rows:,}"
        counts_tokens = bool(self.tokens or self.total_tokens)   # a scan reads no tokens
        if counts_tokens:
            parts.append(f"{_human(self.tokens)} tokens" + (f" of {_human(self.total_tokens)}" if self.total_tokens else ""))
        parts.append(f"{_human(self.rows / elapsed)} rows/s"
                     + (f", {_human(self.tokens / elapsed)} tokens/s" if counts_tokens else ""))
        fraction = None
        if self.total_rows:
            fraction = self.rows / self.total_rows
        elif self.total_tokens:
            fraction = self.tokens / self.total_tokens
        if fraction is not None:
            fraction = min(fraction, 1.0)
            eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
            parts.append(f"{fraction:.1%} done, ETA {_duration(eta) if eta is not None else '?'}")
        parts.append(f"elapsed {_duration(elapsed)}")
        return ", ".join(parts)

    def done(self) -> None:
        log.info("%s", self.line() + " (done)")
