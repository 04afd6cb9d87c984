"""Expected calibration error against hand-computed bins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedpath.metrics.calibration import (
    action_ece,
    calibration_sums,
    ece_from_sums,
    expected_calibration_error,
)


def test_ece_with_one_case_per_bin() -> None:
    # Prepare: four probabilities in four different tenths.
    probs = np.array([0.15, 0.25, 0.85, 0.95])
    outcomes = np.array([0, 1, 1, 1])

    # Execute
    ece = expected_calibration_error(probs, outcomes, n_bins=10)

    # Assert: (|0-.15| + |1-.25| + |1-.85| + |1-.95|) / 4 = 1.1 / 4.
    assert ece == pytest.approx(0.275)


def test_ece_averages_inside_a_bin_before_taking_the_gap() -> None:
    # Prepare: the same cases in two halves.
    probs = np.array([0.15, 0.25, 0.85, 0.95])
    outcomes = np.array([0, 1, 1, 1])

    # Execute
    ece = expected_calibration_error(probs, outcomes, n_bins=2)

    # Assert: low half 2/4 * |1/2 - 0.2| = 0.15; high half 2/4 * |1 - 0.9| = 0.05.
    assert ece == pytest.approx(0.2)


def test_probability_one_falls_in_the_last_bin() -> None:
    assert expected_calibration_error(np.array([1.0]), np.array([1]), n_bins=10) == 0.0


def test_action_ece_uses_top_probability_and_known_labels() -> None:
    # Prepare: right at 0.75, wrong at 0.65, and an unknown label that must not count.
    # (Mid-bin values: float32 0.7 is 0.69999999, which belongs to the bin below 0.7.)
    probs = np.array(
        [[0.75, 0.05, 0.1, 0.1], [0.15, 0.65, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]], dtype=np.float32
    )
    labels = np.array([0, 3, -1])

    # Execute
    ece = action_ece(probs, labels, n_bins=10)

    # Assert: (|1 - 0.75| + |0 - 0.65|) / 2.
    assert ece == pytest.approx(0.45, abs=1e-6)


def test_no_case_gives_nan() -> None:
    assert math.isnan(expected_calibration_error(np.empty(0), np.empty(0)))


@pytest.mark.parametrize(
    ("probs", "n_bins", "message"),
    [(np.array([0.5]), 0, "n_bins must be"), (np.array([1.5]), 10, "probs must lie in")],
)
def test_bad_inputs_are_refused(probs: np.ndarray, n_bins: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(probs, np.ones(len(probs)), n_bins=n_bins)


def test_federated_ece_from_summed_bins_equals_the_central_ece() -> None:
    # Prepare: two partners' conversion probabilities and outcomes, and their union
    rng = np.random.default_rng(0)
    a = (rng.random(300), rng.random(300) < 0.3)
    b = (rng.random(500) ** 2, rng.random(500) < 0.6)

    # Execute
    federated = ece_from_sums(calibration_sums(*a) + calibration_sums(*b))
    central = expected_calibration_error(np.r_[a[0], b[0]], np.r_[a[1], b[1]])

    # Assert
    assert federated == pytest.approx(central, abs=1e-12)
