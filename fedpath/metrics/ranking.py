"""Full-ranking next-item metrics, exactly as the evaluation protocol defines them.

The rank of the target is its position in a stable descending sort of the scores, ties broken by
vocabulary index (lower first): ``rank = 1 + #(score > s_t) + #(score == s_t and index < t)``.
Counting instead of sorting gives that rank without an O(V log V) sort per case, and working in
row blocks keeps memory bounded however large the vocabulary is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_KS: tuple[int, ...] = (5, 10, 20)

# Elements of the [rows, V] comparison masks built at once; about 64 MB of booleans per mask.
_BLOCK_ELEMENTS = 1 << 26


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each target item among all items of its row (``scores`` [n, V])."""
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(
            f"scores must be [n, V] and targets [n], got {scores.shape} and {targets.shape}"
        )
    n, vocab = scores.shape
    if n and (targets.min() < 0 or targets.max() >= vocab):
        raise ValueError(
            f"targets must lie in 0..{vocab - 1}, got {targets.min()}..{targets.max()}"
        )
    if np.isnan(scores).any():
        raise ValueError("scores must not contain NaN, got NaN (a NaN target would rank first)")
    ranks = np.empty(n, dtype=np.int64)
    item_index = np.arange(vocab)
    block = max(1, _BLOCK_ELEMENTS // max(vocab, 1))
    for start in range(0, n, block):
        rows = scores[start : start + block]  # [b, V]
        goal = targets[start : start + block]  # [b]
        target_score = rows[np.arange(len(goal)), goal][:, None]  # [b, 1]
        higher = (rows > target_score).sum(axis=1)
        tied_before = ((rows == target_score) & (item_index < goal[:, None])).sum(axis=1)
        ranks[start : start + block] = 1 + higher + tied_before
    return ranks


def _mean(values: np.ndarray) -> float:
    """Mean over cases; NaN when there is no case (a partner may hold no test item case)."""
    return float(values.mean()) if len(values) else float("nan")


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Share of cases whose target is in the top ``k`` (hit@k: one target per case)."""
    return _mean((np.asarray(ranks) <= k).astype(np.float64))


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean of 1/rank, counting 0 for targets below the top ``k``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return _mean(np.where(ranks <= k, 1.0 / ranks, 0.0))


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean of 1/log2(rank+1), counting 0 below the top ``k`` (one relevant item, so IDCG = 1)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return _mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0))


# Name -> metric of ranks at a cut-off; reports name them "<name>@<k>".
RANKING_METRICS: dict[str, Callable[[np.ndarray, int], float]] = {
    "recall": recall_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
}


def ranking_report(ranks: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """Every ranking metric at every cut-off, keyed ``"<name>@<k>"``."""
    if any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    return {f"{name}@{k}": metric(ranks, k) for k in ks for name, metric in RANKING_METRICS.items()}
