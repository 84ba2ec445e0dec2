"""Cells of the tables: mean +- sample std over seeds, with the run count; 'n/a' when empty.
Paired comparisons of two inits over the seeds both ran: mean difference, 95% interval, verdict."""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import t as student_t

NA = "n/a"


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]  # defined values only
    runs: int                  # runs found, including undefined values

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / self.n if self.n else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof 1); 0 for one run."""
        if not self.n:
            return None
        if self.n == 1:
            return 0.0
        mu = self.mean
        return math.sqrt(sum((v - mu) ** 2 for v in self.values) / (self.n - 1))

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        if not self.n:
            return NA
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f} ({self.n})"


def cell(values) -> Cell:
    values = list(values)
    return Cell(tuple(float(v) for v in values if v is not None and math.isfinite(v)), len(values))


# Paired comparisons. Runs of two inits at one (task, fraction, seed) share the split file and the
# seed, so the seed-to-seed variation common to both cancels in their difference: the test is on
# the per-seed differences, not on two independent spreads.
CONFIDENCE = 0.95
VERDICTS = ("confirmed", "refuted", "inconclusive")


@dataclass(frozen=True)
class Paired:
    """Differences a - b in percentage points, one per seed both sides ran (seeds ascending)."""
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return sum(self.diffs) / self.n if self.n else math.nan  # no shared seed: nothing to compare

    @property
    def ci(self) -> tuple[float, float] | None:
        """Student-t interval of the mean difference, n - 1 degrees of freedom; None for one seed."""
        if self.n < 2:
            return None
        sd = math.sqrt(sum((d - self.mean) ** 2 for d in self.diffs) / (self.n - 1))
        half = float(student_t.ppf((1 + CONFIDENCE) / 2, self.n - 1)) * sd / math.sqrt(self.n)
        return self.mean - half, self.mean + half

    @property
    def verdict(self) -> str:
        """On the claim 'a is better than b': confirmed when the interval lies above 0, refuted
        when below, inconclusive when it holds 0 or there is no interval."""
        ci = self.ci
        if ci is None:
            return "inconclusive"
        return "confirmed" if ci[0] > 0 else "refuted" if ci[1] < 0 else "inconclusive"


def paired(a: dict[int, float], b: dict[int, float], scale: float = 100.0) -> Paired:
    """Pair {seed: value} of two inits on the seeds both have; a seed only one side ran is left out."""
    seeds = tuple(sorted(set(a) & set(b)))
    return Paired(seeds, tuple((a[s] - b[s]) * scale for s in seeds))


def all_verdict(verdicts) -> str:
    """One verdict on claims that must all hold: confirmed if every one is, refuted if any one is,
    otherwise inconclusive."""
    verdicts = list(verdicts)
    if verdicts and all(v == "confirmed" for v in verdicts):
        return "confirmed"
    return "refuted" if "refuted" in verdicts else "inconclusive"
