"""Drift of what a partner's model says in production, against what it said on held-out data.

Two distributions are watched, both outputs of the model (never the shopper's data): the
confidence of the next-action prediction (histogram over ``[0.25, 1]``: the largest of four
probabilities is at least 0.25) and the predicted next action (four categories). The reference
is the model's own output on the partner's held-out cases when the model was loaded; the live
side is a sliding window of the last requests. The distance is the population stability index
(PSI), the credit-scoring convention: below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 a
shift worth a person's attention. Past the threshold the monitor raises an alert once (logged,
and exposed as a metric) and clears it once both distances are back under ``CLEAR_RATIO`` of
the threshold: traffic hovering at the threshold must not raise and clear it request after
request.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from fedpath.schema import N_ACTIONS

log = logging.getLogger(__name__)

CONFIDENCE_RANGE = (1.0 / N_ACTIONS, 1.0)
SMOOTHING = 1e-4  # keeps an empty bin from making the index infinite
CLEAR_RATIO = 0.8  # an alert clears below this share of the threshold (hysteresis)


@dataclass(frozen=True)
class DriftSettings:
    threshold: float = 0.25  # PSI above which either distribution has drifted
    window: int = 500  # live predictions compared with the reference
    min_samples: int = 100  # no verdict before this many live predictions
    bins: int = 10  # confidence histogram bins

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"drift threshold must be > 0, got {self.threshold!r}")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError(
                f"drift min_samples must be in [1, window={self.window}], got {self.min_samples!r}"
            )
        if self.bins < 2:
            raise ValueError(f"drift bins must be >= 2, got {self.bins!r}")


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two histograms (counts or shares) over the same bins."""
    p = expected / max(expected.sum(), 1) + SMOOTHING
    q = actual / max(actual.sum(), 1) + SMOOTHING
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass(frozen=True)
class DriftScores:
    confidence_psi: float
    action_psi: float
    samples: int
    alert: bool


class DriftMonitor:
    """Thread-safe: the HTTP server's request threads all report into one monitor."""

    def __init__(self, action_probs: np.ndarray, settings: DriftSettings | None = None) -> None:
        """``action_probs`` ``[n, 4]``: the model's next-action output on held-out cases."""
        self.settings = settings or DriftSettings()
        self._edges = np.linspace(*CONFIDENCE_RANGE, self.settings.bins + 1)
        self._reference = self._histograms(np.asarray(action_probs, dtype=np.float64))
        # The window as (confidence bin, action) pairs, and its two histograms kept up to date
        # as pairs come and go: a verdict per request costs the same whatever the window.
        self._live: deque[tuple[int, int]] = deque()
        self._counts = (np.zeros(self.settings.bins), np.zeros(N_ACTIONS))
        self._alert = False
        self._lock = threading.Lock()

    def _bins(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each prediction's confidence bin (``np.histogram``'s: the last bin holds 1.0) and
        predicted action."""
        confidence = np.clip(probs.max(axis=1), *CONFIDENCE_RANGE)
        bins = np.searchsorted(self._edges, confidence, side="right") - 1
        return np.minimum(bins, self.settings.bins - 1), probs.argmax(axis=1)

    def _histograms(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        confidence, action = self._bins(probs)
        return (
            np.bincount(confidence, minlength=self.settings.bins).astype(np.float64),
            np.bincount(action, minlength=N_ACTIONS).astype(np.float64),
        )

    def observe(self, action_probs: np.ndarray) -> DriftScores:
        """Add live predictions ``[n, 4]`` and return the current verdict."""
        confidence, action = self._bins(np.atleast_2d(action_probs))
        with self._lock:
            for pair in zip(confidence.tolist(), action.tolist(), strict=True):
                if len(self._live) == self.settings.window:
                    old = self._live.popleft()
                    self._counts[0][old[0]] -= 1
                    self._counts[1][old[1]] -= 1
                self._live.append(pair)
                self._counts[0][pair[0]] += 1
                self._counts[1][pair[1]] += 1
            scores = self._scores()
            if scores.alert != self._alert:
                self._alert = scores.alert
                if scores.alert:
                    log.warning(
                        "drift alert: confidence PSI %.3f, next-action PSI %.3f over the last %d "
                        "predictions (threshold %.3f)",
                        scores.confidence_psi,
                        scores.action_psi,
                        scores.samples,
                        self.settings.threshold,
                    )
                else:
                    log.info("drift alert cleared: both PSIs back under the threshold")
            return scores

    def scores(self) -> DriftScores:
        with self._lock:
            return self._scores()

    def _scores(self) -> DriftScores:
        samples = len(self._live)
        if samples < self.settings.min_samples:
            return DriftScores(0.0, 0.0, samples, False)
        confidence_psi = psi(self._reference[0], self._counts[0])
        action_psi = psi(self._reference[1], self._counts[1])
        worst = max(confidence_psi, action_psi)
        threshold = self.settings.threshold * (CLEAR_RATIO if self._alert else 1.0)
        return DriftScores(confidence_psi, action_psi, samples, worst > threshold)
