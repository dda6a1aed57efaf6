"""Mean and standard deviation over seeds, checked against hand-computed values."""

import math

import pytest

from evals.errors import DataError
from metrics.stats import mean_std


def test_sample_standard_deviation_over_seeds():
    mean, std = mean_std([50.0, 52.0, 57.0])
    assert mean == pytest.approx(53.0)
    assert std == pytest.approx(math.sqrt(((50 - 53) ** 2 + (52 - 53) ** 2 + (57 - 53) ** 2) / 2))  # sqrt(13)


def test_one_seed_has_no_spread_and_empty_is_an_error():
    assert mean_std([61.25]) == (61.25, 0.0)
    with pytest.raises(DataError, match="no scores"):
        mean_std([])
