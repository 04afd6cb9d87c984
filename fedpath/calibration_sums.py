"""Calibration and the review gate from sums alone, so that a federation fits them exactly as a
central run on the union of the partners' valid cases would.

Both fits read only sums over cases: the temperatures the summed NLL on a fixed grid
(``fedpath.models.temperature``), each decision's cutoff the handled and right counts per
candidate cutoff (``fedpath.review``). A partner computes ``nll_sums`` of its valid cases, the
sums are added securely, ``temperatures_from_nll`` picks the temperatures; the partner then
computes ``gate_counts`` of its calibrated valid cases, and ``calibration_from_counts`` certifies
the cutoffs from their sum. The central path (``fedpath.evaluate.calibrated_review``) goes
through the same grid, counts and certification.
"""

from __future__ import annotations

import numpy as np

from fedpath.data.containers import Cases
from fedpath.models.base import Predictions
from fedpath.models.calibration import DECISIONS, Calibration
from fedpath.models.temperature import (
    GRID,
    Temperatures,
    action_nll_on_grid,
    binary_nll_on_grid,
    fit_from_nll,
)
from fedpath.review import (
    DEFAULT_DELTA,
    ReviewGate,
    candidate_cutoffs,
    certified_cutoff,
    cutoff_counts,
)
from fedpath.targets import conversion_label


def nll_sums(
    predictions: Predictions, cases: Cases, *, conversion_target: str = "session"
) -> np.ndarray:
    """[2 * len(GRID)] the action head's then the conversion head's summed NLL on the grid."""
    converts = conversion_label(cases, conversion_target)
    return np.concatenate(
        [
            action_nll_on_grid(predictions.action_probs, cases.next_action),
            binary_nll_on_grid(predictions.convert_prob, converts),
        ]
    )


def temperatures_from_nll(sums: np.ndarray) -> Temperatures:
    """The temperatures of least summed NLL, from (summed) ``nll_sums``."""
    action, convert = np.asarray(sums, dtype=np.float64).reshape(2, len(GRID))
    return Temperatures(action=fit_from_nll(action), convert=fit_from_nll(convert))


def gate_counts(
    calibrated: Predictions,
    cases: Cases,
    threshold: float,
    *,
    conversion_target: str = "session",
) -> np.ndarray:
    """[len(DECISIONS), 2, k] per decision, per candidate cutoff: cases handled, right among
    them (``fedpath.review.cutoff_counts``) over the cases whose right answer is known."""
    return np.stack(
        [
            cutoff_counts(
                *ReviewGate(
                    decision=decision, threshold=threshold, conversion_target=conversion_target
                ).outcomes(calibrated, cases),
                threshold,
            )
            for decision in DECISIONS
        ]
    )


def calibration_from_counts(
    temperatures: Temperatures,
    counts: np.ndarray,
    threshold: float,
    *,
    delta: float = DEFAULT_DELTA,
) -> Calibration:
    """The model's Calibration: ``temperatures`` and each decision's cutoff certified on the
    (summed) ``gate_counts``."""
    counts = np.asarray(counts).reshape(len(DECISIONS), 2, len(candidate_cutoffs(threshold)))
    return Calibration(
        temperatures=temperatures,
        cutoffs={
            decision: certified_cutoff(counts[index], threshold, delta)
            for index, decision in enumerate(DECISIONS)
        },
        threshold=threshold,
    )
