"""How every leaderboard writes a number: one mean ± std over seeds and one cell formatter for all tracks.
Standard library and numpy only."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (ddof 1) of ``values``; the std is NaN below two values, which
    a cell then leaves out rather than showing a spread of 0."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def number(value: float, std: float = math.nan, digits: int | None = None, signed: bool = False) -> str:
    """``value`` (``± std`` where the std is defined) at ``digits`` decimals, by default 2 from 10 on and 4
    below; ``signed`` writes the sign always, and a value that rounds to zero as +0."""
    digits = digits if digits is not None else 2 if abs(value) >= 10 else 4
    text = f"{round(value, digits) + 0.0:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


__all__ = ["mean_std", "number"]
