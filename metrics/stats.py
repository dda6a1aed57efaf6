"""Statistics over seeds: the mean and sample standard deviation a sweep reports per cell group."""

from __future__ import annotations

import math
from collections.abc import Sequence

from evals.errors import DataError


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator, as papers report over seeds);
    the deviation of a single value is 0.0."""
    if not values:
        raise DataError("no scores to average (an empty group of cells)")
    mean = math.fsum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    variance = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance)
