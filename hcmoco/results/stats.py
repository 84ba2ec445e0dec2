"""Cells of the tables: mean +- sample std over seeds, with the run count; 'n/a' when empty."""
from __future__ import annotations

import math
from dataclasses import dataclass

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
