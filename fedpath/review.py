"""The human-review gate: a confidence threshold that is a promise about held-out accuracy.

A merchant acts on one *decision* per prefix, not on a probability vector:

- ``action``: the most likely next action (view / cart / purchase / exit);
- ``exit``: "this shopper leaves next" vs "stays" (P(exit) at 0.5);
- ``convert``: "this session converts" vs "does not" (the conversion probability at 0.5);
- ``items``: the recommended list, the model's top ``k`` next items (20 unless configured:
  ``fedpath.models.calibration.DEFAULT_ITEMS_K``),
  right when the next item is in it (item cases only: an exit has no right list).

The decision's *confidence* is the calibrated probability that it is right (the top action
probability, or max(p, 1 − p) of a yes/no decision; see ``fedpath.models.temperature``); for
``items`` the model's probability mass on the listed items (``NextStepModel.item_mass``: softmax
of the item logits, no item temperature, for the neural models; for the count models the listed
share of their counts with Witten–Bell's allowance for unseen items, not a calibrated probability).
Calibration alone makes the handled share right ``threshold`` of the time *on average*; the gate
makes it a promise: ``ReviewGate.fit`` on held-out (valid) cases picks the lowest cutoff
≥ ``threshold`` whose handled cases are right at least ``threshold`` of the time with
confidence 1 − ``delta`` (one-sided Clopper–Pearson, Bonferroni over the candidate cutoffs).
Where no cutoff earns it, everything goes to review: coverage 0 is said, not hidden.

The certification reads only two counts per candidate cutoff (cases handled, and right among
them; ``cutoff_counts``), so partners can each count their own valid cases, the counts can be
summed securely, and ``certified_cutoff`` on the sum picks the very cutoff a central fit on the
union would (``fedpath.server.calibration_round``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import beta

from fedpath.data.containers import Cases
from fedpath.models.base import DEFAULT_REVIEW_THRESHOLD, Predictions
from fedpath.models.calibration import DECISIONS
from fedpath.schema import Action
from fedpath.targets import conversion_label

DEFAULT_DELTA = 0.05  # the promise may fail on at most 5% of valid draws
CUTOFF_STEP = 0.01  # candidate cutoffs: threshold, threshold + 0.01, ... below 1


def top_items(scores: np.ndarray, k: int) -> np.ndarray:
    """[n, k] the k best-scored items of each row of ``scores`` [n, V], best first.

    Ties are broken as the ranking metrics break them (lower item index first), so the target
    is in the list exactly when its rank is at most ``k`` (``fedpath.metrics.ranking``); one
    partition and a sort of k values per row, not a sort of every [V] row.
    """
    scores = np.asarray(scores)
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be in [1, {scores.shape[1]}] (the items scored), got {k}")
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]  # [n, 1] the k-th best score
    chosen, tied = scores > kth, scores == kth  # [n, V]
    room = k - chosen.sum(axis=1)  # [n] tied items the list still takes, lowest index first
    rows, cols = np.nonzero(tied)  # by row, then by index: no [n, V] running count
    among = np.arange(len(rows)) - np.searchsorted(rows, np.arange(len(scores)))[rows]
    keep = among < room[rows]
    chosen[rows[keep], cols[keep]] = True  # k per row
    items = np.nonzero(chosen)[1].reshape(len(scores), k)  # ascending index within a row
    order = np.argsort(-np.take_along_axis(scores, items, axis=1), axis=1, kind="stable")
    return np.take_along_axis(items, order, axis=1)


def decide(predictions: Predictions, decision: str) -> tuple[np.ndarray, np.ndarray]:
    """([n] chosen answer, [n] float confidence in it) for ``decision``.

    The answer is an action index for ``action``, 1 (yes) / 0 (no) for ``exit`` and ``convert``,
    and for ``items`` the [n, k] list itself (``predictions.top_items``, whose ``item_mass`` is
    the confidence: ``fedpath.evaluate.predict_heads`` keeps both).
    """
    if decision == "items":
        if predictions.top_items is None or predictions.item_mass is None:
            raise ValueError(
                "the items decision needs predictions with top_items and item_mass "
                "(fedpath.evaluate.predict_heads(..., items_k=k)), got neither"
            )
        return predictions.top_items, np.asarray(predictions.item_mass, dtype=np.float64)
    if decision == "action":
        probs = predictions.action_probs
        return probs.argmax(axis=1), probs.max(axis=1)
    if decision == "exit":
        p = predictions.action_probs[:, Action.EXIT]
    elif decision == "convert":
        p = predictions.convert_prob
    else:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    p = np.asarray(p, dtype=np.float64)
    return (p >= 0.5).astype(np.int64), np.maximum(p, 1 - p)


def truth(cases: Cases, decision: str, *, conversion_target: str = "session") -> np.ndarray:
    """[n] the right answer to ``decision`` for each case; -1 where the log does not say."""
    actions = np.asarray(cases.next_action, dtype=np.int64)
    if decision == "action":
        return actions
    if decision == "exit":
        return np.where(actions >= 0, (actions == Action.EXIT).astype(np.int64), -1)
    if decision == "convert":
        return conversion_label(cases, conversion_target).astype(np.int64)
    if decision == "items":  # the next item; -1 for an exit or an unknown next step
        return np.asarray(cases.next_item, dtype=np.int64)
    raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")


def lower_bound(correct: int, total: int, delta: float) -> float:
    """One-sided Clopper–Pearson lower bound of a success rate at confidence 1 − ``delta``."""
    if total == 0 or correct == 0:
        return 0.0
    return float(beta.ppf(delta, correct, total - correct + 1))


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """The whole curve: for each distinct confidence c (high to low), handling every case with
    confidence ≥ c: its ``coverage`` (share handled) and ``accuracy`` (share of those right)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(-confidence, kind="stable")
    sorted_conf = confidence[order]
    hits = np.cumsum(np.asarray(correct, dtype=np.float64)[order])
    last = np.r_[sorted_conf[1:] != sorted_conf[:-1], True] if len(order) else np.empty(0, bool)
    handled = np.arange(1, len(order) + 1)[last]
    return {
        "cutoff": sorted_conf[last],
        "coverage": handled / max(len(order), 1),
        "accuracy": hits[last] / handled,
    }


def candidate_cutoffs(threshold: float) -> np.ndarray:
    """[k] the cutoffs a gate may certify: ``threshold``, ``threshold + CUTOFF_STEP``, ... < 1.

    Counted in whole steps: ``np.arange(0.85, 1.0, 0.01)`` also yields 0.99999..., a spurious
    cutoff of 1 (the float quotient 15.000000000000002 rounds up to 16 steps).
    """
    steps = math.ceil(round((1.0 - threshold) / CUTOFF_STEP, 9))
    return threshold + CUTOFF_STEP * np.arange(steps)


def cutoff_counts(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> np.ndarray:
    """[2, k] per candidate cutoff: cases handled (confidence ≥ cutoff), and right among them.

    Counts over disjoint sets of cases add up: the sum of partners' counts is the union's.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    handled = confidence[None, :] >= candidate_cutoffs(threshold)[:, None]  # [k, n]
    return np.stack([handled.sum(axis=1), (handled & correct[None, :]).sum(axis=1)])


def certified_cutoff(counts: np.ndarray, threshold: float, delta: float = DEFAULT_DELTA) -> float:
    """The lowest candidate cutoff whose handled cases are right at least ``threshold`` of the
    time with confidence 1 − ``delta`` (Bonferroni over the candidates); ``inf`` if none is."""
    _require_open_unit("threshold", threshold)
    _require_open_unit("delta", delta)
    candidates = candidate_cutoffs(threshold)
    counts = np.asarray(counts)
    if counts.shape != (2, len(candidates)):
        raise ValueError(
            f"counts must have shape (2, {len(candidates)}) for threshold {threshold}, "
            f"got {counts.shape}"
        )
    level = delta / len(candidates)  # Bonferroni: the promise holds for any we pick
    for cutoff, handled, right in zip(candidates, counts[0], counts[1], strict=True):
        # lowest first: the first certified one covers the most
        if lower_bound(int(right), int(handled), level) >= threshold:
            return float(cutoff)
    return float("inf")


def _require_open_unit(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value}")


@dataclass
class ReviewGate:
    """Sends a case to a person unless its decision's confidence reaches a certified cutoff."""

    decision: str = "action"
    threshold: float = DEFAULT_REVIEW_THRESHOLD
    delta: float = DEFAULT_DELTA
    conversion_target: str = "session"
    cutoff_: float = field(default=float("inf"), init=False)

    def fit(self, predictions: Predictions, cases: Cases) -> ReviewGate:
        """Choose the cutoff on held-out ``cases`` (valid), predictions already calibrated."""
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")
        _require_open_unit("threshold", self.threshold)
        counts = cutoff_counts(*self.outcomes(predictions, cases), self.threshold)
        self.cutoff_ = certified_cutoff(counts, self.threshold, self.delta)
        return self

    def outcomes(self, predictions: Predictions, cases: Cases) -> tuple[np.ndarray, np.ndarray]:
        """(confidence, correct) over the cases whose right answer is known."""
        answer, confidence = decide(predictions, self.decision)
        right = truth(cases, self.decision, conversion_target=self.conversion_target)
        known = right >= 0
        if answer.ndim == 2:  # a list is right when it holds the answer
            return confidence[known], (answer[known] == right[known, None]).any(axis=1)
        return confidence[known], answer[known] == right[known]

    def needs_review(self, predictions: Predictions) -> np.ndarray:
        """[n] True where a person should look before the decision is acted on."""
        return decide(predictions, self.decision)[1] < self.cutoff_

    def report(self, predictions: Predictions, cases: Cases) -> dict[str, float]:
        """Coverage and handled accuracy at the fitted cutoff on ``cases`` (test)."""
        confidence, correct = self.outcomes(predictions, cases)
        handled = confidence >= self.cutoff_
        return {
            "gate_cutoff": self.cutoff_,
            "gate_coverage": float(handled.mean()) if len(handled) else float("nan"),
            "gate_handled_accuracy": (
                float(correct[handled].mean()) if handled.any() else float("nan")
            ),
        }
