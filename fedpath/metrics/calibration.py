"""Expected calibration error: how far stated probabilities sit from observed frequencies.

A shop acts on a prediction only when the model is sure (see ``Predictions.needs_review``), so the
stated confidence has to mean what it says; ECE measures that on equal-width bins.
"""

from __future__ import annotations

import numpy as np

DEFAULT_N_BINS = 10
_SLACK = 1e-6  # float32 rows summing to 1 can put a top probability a rounding step above 1


def calibration_sums(
    probs: np.ndarray, outcomes: np.ndarray, *, n_bins: int = DEFAULT_N_BINS
) -> np.ndarray:
    """[3, n_bins] per equal-width bin: case count, Σ stated probability, Σ outcome.

    Bin b holds probabilities in [b/n_bins, (b+1)/n_bins); 1.0 falls in the last bin. ``outcomes``
    is 1 where the event the probability speaks of happened (the predicted action was right, the
    session converted). These are sums, so partners' sums add up (securely) to the sums of their
    union: ECE from the summed table is the federated ECE, exactly the central one.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    probs = np.asarray(probs, dtype=np.float64)
    outcomes = np.asarray(outcomes, dtype=np.float64)
    if probs.shape != outcomes.shape or probs.ndim != 1:
        raise ValueError(
            f"probs and outcomes must be equal-length vectors, got {probs.shape}, {outcomes.shape}"
        )
    if len(probs) and (probs.min() < -_SLACK or probs.max() > 1.0 + _SLACK):
        raise ValueError(f"probs must lie in [0, 1], got {probs.min()}..{probs.max()}")
    probs = np.clip(probs, 0.0, 1.0)
    bins = np.minimum((probs * n_bins).astype(np.int64), n_bins - 1)
    return np.stack(
        [
            np.bincount(bins, minlength=n_bins).astype(np.float64),
            np.bincount(bins, weights=probs, minlength=n_bins),
            np.bincount(bins, weights=outcomes, minlength=n_bins),
        ]
    )


def ece_from_sums(sums: np.ndarray) -> float:
    """ECE of a ``calibration_sums`` table (one partner's, or the sum of several); NaN if empty.

    Σ_b |B|/n · |Σ outcome/|B| − Σ prob/|B||  =  Σ_b |Σ outcome − Σ prob| / n.
    """
    count, prob_sum, outcome_sum = np.asarray(sums, dtype=np.float64)
    n = count.sum()
    return float(np.abs(outcome_sum - prob_sum).sum() / n) if n > 0 else float("nan")


def expected_calibration_error(
    probs: np.ndarray, outcomes: np.ndarray, *, n_bins: int = DEFAULT_N_BINS
) -> float:
    """ECE = Σ_b |B|/n · |mean(outcome in B) − mean(prob in B)| over equal-width bins of [0, 1]
    (``calibration_sums``). NaN when there are no cases."""
    return ece_from_sums(calibration_sums(probs, outcomes, n_bins=n_bins))


def action_ece(
    action_probs: np.ndarray, labels: np.ndarray, *, n_bins: int = DEFAULT_N_BINS
) -> float:
    """ECE of the next-action confidence (top probability) over cases with a known label."""
    known = np.asarray(labels) >= 0
    probs = np.asarray(action_probs)[known]
    correct = probs.argmax(axis=1) == np.asarray(labels)[known]
    return expected_calibration_error(probs.max(axis=1), correct, n_bins=n_bins)


def reliability_bins(
    probs: np.ndarray, outcomes: np.ndarray, *, n_bins: int = DEFAULT_N_BINS
) -> dict[str, np.ndarray]:
    """Per bin of ``calibration_sums``: ``count``, mean stated ``confidence`` and observed
    ``frequency`` (NaN in an empty bin): the points of a reliability diagram."""
    count, prob_sum, outcome_sum = calibration_sums(probs, outcomes, n_bins=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"count": count, "confidence": prob_sum / count, "frequency": outcome_sum / count}
