"""Temperature scaling: it recovers a known over-confidence and federates by summing NLLs."""

from __future__ import annotations

import numpy as np
import pytest

from fedpath.metrics.calibration import expected_calibration_error
from fedpath.models.base import Predictions
from fedpath.models.temperature import (
    GRID,
    Temperatures,
    binary_nll_on_grid,
    fit_from_nll,
    scale_binary,
)


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True P(yes) uniform in (0.05, 0.95); the model states it at temperature 1/3 (too sure)."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.05, 0.95, n)
    outcomes = rng.random(n) < truth
    return scale_binary(truth, 1 / 3), outcomes


def test_binary_temperature_undoes_a_known_overconfidence() -> None:
    # Prepare
    stated, outcomes = overconfident(20_000, seed=0)

    # Execute
    temperature = fit_from_nll(binary_nll_on_grid(stated, outcomes))
    fixed = scale_binary(stated, temperature)

    # Assert: T near 3 and the ECE falls to noise level
    assert temperature == pytest.approx(3.0, rel=0.08)
    assert expected_calibration_error(stated, outcomes) > 0.1
    assert expected_calibration_error(fixed, outcomes) < 0.02


def test_partners_summing_their_nll_get_the_central_temperature() -> None:
    # Prepare: two partners' valid cases and their union
    a, b = overconfident(3_000, seed=1), overconfident(5_000, seed=2)
    union = (np.r_[a[0], b[0]], np.r_[a[1], b[1]])

    # Execute
    federated = fit_from_nll(binary_nll_on_grid(*a) + binary_nll_on_grid(*b))
    central = fit_from_nll(binary_nll_on_grid(*union))

    # Assert
    assert federated == central


def test_scaling_keeps_the_ranking_and_rows_summing_to_one() -> None:
    # Prepare
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1]], dtype=np.float32)
    outputs = Predictions(np.empty((2, 0)), probs, np.array([0.9, 0.2], dtype=np.float32))

    # Execute
    scaled = Temperatures(action=2.0, convert=2.0).apply(outputs)

    # Assert
    assert (scaled.action_probs.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert np.allclose(scaled.action_probs.sum(axis=1), 1)
    assert scaled.action_probs[0, 0] < 0.7 and scaled.convert_prob[0] < 0.9


def test_nothing_to_fit_leaves_temperature_one_and_bad_values_are_refused() -> None:
    assert fit_from_nll(np.zeros_like(GRID)) == 1.0
    with pytest.raises(ValueError, match="action temperature must be a finite number > 0"):
        Temperatures(action=0.0)
