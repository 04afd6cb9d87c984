"""The contract every next-step model honours.

A strategy, a client or the CLI only ever holds a ``NextStepModel``: it fits on cases, predicts
three things for each prefix, and moves its learned state in and out as named numpy arrays (which
is what Flower ships and what safetensors stores).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedpath.data.containers import Cases

if TYPE_CHECKING:  # calibration builds on Predictions: import it for types only
    from fedpath.models.calibration import Calibration

DEFAULT_REVIEW_THRESHOLD = 0.85

# Called after each epoch of fit() with (epoch, metrics of that epoch); lets the caller draw a
# progress bar or record learning curves without the model knowing about either.
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class Predictions:
    """What a model says about a batch of prefixes."""

    item_scores: np.ndarray  # [n, n_items] float32, higher = more likely next item
    action_probs: np.ndarray  # [n, 4] float32, rows sum to 1 (view, cart, purchase, exit)
    convert_prob: np.ndarray  # [n] float32, P(session converts)
    # The recommended list, kept where the [n, n_items] scores are not (``fedpath.evaluate``):
    top_items: np.ndarray | None = None  # [n, k] int64, the k best-scored items, best first
    item_mass: np.ndarray | None = None  # [n] float64, the model's P(next item in top_items)

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the most likely next action: how sure the model is of the next step."""
        return self.action_probs.max(axis=1)

    def needs_review(self, threshold: float = DEFAULT_REVIEW_THRESHOLD) -> np.ndarray:
        """True where a person should look before the prediction is acted on."""
        return self.confidence < threshold


class NextStepModel(ABC):
    """A next-item / next-action / conversion predictor over a fixed item vocabulary."""

    name: str = ""
    # Fitted on valid after training and saved with the weights; None: served uncalibrated.
    calibration: Calibration | None = None

    def __init__(self, *, n_items: int, seed: int = 0) -> None:
        self.n_items = n_items
        self.seed = seed

    @abstractmethod
    def fit(
        self, train: Cases, valid: Cases | None = None, *, on_epoch: EpochCallback | None = None
    ) -> NextStepModel:
        """Learn from ``train`` starting from the current weights (a warm start when federated)."""

    @abstractmethod
    def predict(self, cases: Cases) -> Predictions:
        """Score every prefix of ``cases``."""

    def item_mass(self, cases: Cases, predictions: Predictions, items: np.ndarray) -> np.ndarray:
        """[n] the model's probability that each case's next item is among ``items`` ([n, k]).

        The review gate's confidence in a recommended list (``fedpath.review``). This default
        reads ``item_scores`` as logits over the whole vocabulary, as the neural models' are: the
        softmax mass of the listed items, at temperature 1 (no item temperature is fitted; the
        certified cutoff, not the mass, keeps the gate's promise). Models whose scores are not
        logits override it.
        """
        scores = np.asarray(predictions.item_scores, dtype=np.float64)  # [n, V]
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # [n, 1]
        listed = np.take_along_axis(shifted, np.asarray(items, dtype=np.int64), axis=1)
        return np.exp(listed - log_norm).sum(axis=1)

    @abstractmethod
    def get_weights(self) -> dict[str, np.ndarray]:
        """The learned state as named arrays (copies)."""

    @abstractmethod
    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Replace the learned state; raises ``ValueError`` naming a missing or misshapen array."""
