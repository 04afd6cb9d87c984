"""How partners' metrics become one number per round, as Flower's metric aggregation functions.

Each metric is pooled over the cases it averages over, so the federated figure is the one a
centralized evaluation on the union of the partners' cases would give for every metric that
is a mean over cases (recall, MRR, NDCG, action accuracy, review rate). Conversion AUC and the
calibration errors are not such means: their pooled value approximates the global one.
"""

from __future__ import annotations

import math

from flwr.common import Scalar

from fedpath.federation.keys import N_CASES, N_ITEM_CASES, PARTNER, TRAIN_LOSS

COUNTS = (N_CASES, N_ITEM_CASES)


def _weight_key(metric: str) -> str:
    """Ranking metrics (``recall@20``) average over item cases, the others over all cases."""
    return N_ITEM_CASES if "@" in metric else N_CASES


def pooled_eval_metrics(replies: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
    """Case-weighted means of the partners' evaluation metrics; a partner's NaN is skipped."""
    pooled: dict[str, Scalar] = {
        key: sum(float(m.get(key, 0.0)) for _, m in replies) for key in COUNTS
    }
    names = {key for _, metrics in replies for key in metrics} - {PARTNER, *COUNTS}
    for name in sorted(names):
        total = weight = 0.0
        for _, metrics in replies:
            value = float(metrics.get(name, math.nan))
            cases = float(metrics.get(_weight_key(name), 0.0))
            if not math.isnan(value) and cases > 0:
                total += value * cases
                weight += cases
        pooled[name] = total / weight if weight else math.nan
    return pooled


def mean_train_loss(replies: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
    """The training loss per case across partners (count models have none: nothing is returned)."""
    losses = [(n, float(m[TRAIN_LOSS])) for n, m in replies if TRAIN_LOSS in m]
    total = sum(n for n, _ in losses)
    return {TRAIN_LOSS: sum(n * loss for n, loss in losses) / total} if total else {}
