"""Bootstrap over sessions: replicates keep sessions whole, intervals are percentiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedpath.metrics.bootstrap import bootstrap_scores, interval, session_replicates


def test_a_replicate_holds_whole_sessions_and_as_many_sessions_as_the_test() -> None:
    # Prepare: sessions of 1, 2 and 3 cases
    session_index = np.array([0, 1, 1, 2, 2, 2])

    # Execute
    replicates = session_replicates(session_index, n_replicates=50, seed=1)

    # Assert: each drawn session brings all its cases, 3 sessions per replicate
    for rows in replicates:
        counts = np.bincount(session_index[rows], minlength=3)
        assert all(c % size == 0 for c, size in zip(counts, (1, 2, 3), strict=True))
        assert sum(c // size for c, size in zip(counts, (1, 2, 3), strict=True)) == 3


def test_paired_replicates_give_a_zero_width_interval_to_a_constant_difference() -> None:
    # Prepare: system B is system A plus 0.1 on every case
    values = np.linspace(0, 1, 20)
    replicates = session_replicates(np.arange(20), n_replicates=200)

    # Execute
    scores = bootstrap_scores(
        {"a": lambda rows: values[rows].mean(), "b": lambda rows: values[rows].mean() + 0.1},
        replicates,
    )

    # Assert
    assert interval(scores["b"] - scores["a"]) == pytest.approx((0.1, 0.1))
    low, high = interval(scores["a"])
    assert low < 0.5 < high


def test_interval_skips_undefined_replicates_and_is_nan_without_any() -> None:
    assert interval(np.array([np.nan, 1.0, 1.0])) == (1.0, 1.0)
    assert all(math.isnan(v) for v in interval(np.array([np.nan])))
