"""Temperature scaling per head (Guo et al. 2017), fitted on valid, so probabilities mean what
they say.

One scalar per head divides the head's logits: ``softmax(log p / T)`` for the next action,
``sigmoid(logit(p) / T)`` for conversion. It keeps every ranking (argmax, AUC, top-k) and only
moves how sure the model claims to be. T is chosen on a fixed log-spaced grid by the summed
negative log-likelihood; a sum over cases is what a federation can add up securely, so partners
that each report ``nll_on_grid`` of their own valid cases obtain exactly the T a central fit on
their union would (``fit_from_nll``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fedpath.models.base import Predictions

# T from 1/20 to 20, 241 points: steps of 2.5%, finer than valid sets of a few hundred cases
# can tell apart.
GRID = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
_EPS = 1e-7


def _log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))


def scale_action(action_probs: np.ndarray, temperature: float) -> np.ndarray:
    """[n, 4] ``softmax(log p / T)``: the action head's probabilities at temperature ``T``."""
    z = _log(action_probs) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def scale_binary(probs: np.ndarray, temperature: float) -> np.ndarray:
    """[n] ``sigmoid(logit(p) / T)``."""
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return 1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p)) / temperature))


def action_nll_on_grid(action_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[len(GRID)] summed NLL of the known next actions at each grid temperature."""
    known = np.asarray(labels) >= 0
    probs, truth = np.asarray(action_probs)[known], np.asarray(labels)[known].astype(np.int64)
    return np.array(
        [-_log(scale_action(probs, t)[np.arange(len(truth)), truth]).sum() for t in GRID]
    )


def binary_nll_on_grid(probs: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """[len(GRID)] summed binary NLL of ``outcomes`` at each grid temperature."""
    outcomes = np.asarray(outcomes, dtype=bool)
    nll = []
    for t in GRID:
        p = scale_binary(probs, t)
        nll.append(-(_log(p[outcomes]).sum() + _log(1 - p[~outcomes]).sum()))
    return np.array(nll)


def fit_from_nll(nll: np.ndarray) -> float:
    """The grid temperature of least summed NLL; 1 (no change) when there was nothing to fit."""
    nll = np.asarray(nll, dtype=np.float64)
    if nll.shape != GRID.shape:
        raise ValueError(f"nll must have one value per grid point {GRID.shape}, got {nll.shape}")
    if not np.isfinite(nll).all() or np.ptp(nll) == 0:
        return 1.0
    return float(GRID[int(np.argmin(nll))])


@dataclass(frozen=True)
class Temperatures:
    """One temperature per probabilistic head; (1, 1) leaves the model's outputs unchanged."""

    action: float = 1.0
    convert: float = 1.0

    def __post_init__(self) -> None:
        for key in ("action", "convert"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{key} temperature must be a finite number > 0, got {value}")

    @classmethod
    def fit(cls, predictions: Predictions, next_action: np.ndarray, converts: np.ndarray):
        """Per-head temperatures minimizing the NLL of ``predictions`` (on valid)."""
        return cls(
            action=fit_from_nll(action_nll_on_grid(predictions.action_probs, next_action)),
            convert=fit_from_nll(binary_nll_on_grid(predictions.convert_prob, converts)),
        )

    def apply(self, predictions: Predictions) -> Predictions:
        """The same predictions with calibrated action and conversion probabilities (the item
        scores and the recommended list's mass unchanged: there is no item temperature)."""
        return replace(
            predictions,
            action_probs=scale_action(predictions.action_probs, self.action).astype(np.float32),
            convert_prob=scale_binary(predictions.convert_prob, self.convert).astype(np.float32),
        )
