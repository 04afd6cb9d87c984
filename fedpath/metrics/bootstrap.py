"""Confidence intervals by resampling sessions, the unit the cases are not independent in.

A session yields many prefix cases whose outcomes move together (one converting session labels
all its prefixes), so resampling cases would understate the spread. Each replicate draws test
sessions with replacement and keeps all their cases; every system is scored on the *same*
replicates, so the interval of a difference between two systems is paired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

DEFAULT_REPLICATES = 1000
DEFAULT_LEVEL = 0.95

# metric(rows) -> value, scoring the cases at ``rows`` (repeated rows count repeatedly).
RowMetric = Callable[[np.ndarray], float]


def session_replicates(
    session_index: np.ndarray, *, n_replicates: int = DEFAULT_REPLICATES, seed: int = 0
) -> list[np.ndarray]:
    """``n_replicates`` row-index arrays, each the cases of a with-replacement draw of sessions."""
    if n_replicates < 1:
        raise ValueError(f"n_replicates must be >= 1, got {n_replicates}")
    sessions, inverse = np.unique(np.asarray(session_index), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(sessions)))
    ends = np.r_[starts[1:], len(order)]
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_replicates):
        drawn = rng.integers(0, len(sessions), len(sessions))
        replicates.append(np.concatenate([order[starts[s] : ends[s]] for s in drawn]))
    return replicates


def interval(values: np.ndarray, *, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The percentile interval of the finite ``values``; (nan, nan) when none is finite."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_scores(
    metrics: Mapping[str, RowMetric], replicates: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Each metric on each replicate: name -> [n_replicates] values (NaN where undefined)."""
    return {
        name: np.array([metric(rows) for rows in replicates], dtype=np.float64)
        for name, metric in metrics.items()
    }
