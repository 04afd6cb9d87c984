"""One evaluation for every model: next item, next action, conversion, calibration, review rate.

Predictions are made ``batch_size`` cases at a time and only the target ranks and the small
action / conversion outputs are kept, so memory stays at batch_size × V scores whatever the
number of cases.
"""

from __future__ import annotations

import numpy as np

from fedpath.data.containers import Cases
from fedpath.metrics.calibration import DEFAULT_N_BINS, action_ece, expected_calibration_error
from fedpath.metrics.classification import action_accuracy, action_macro_f1, conversion_auc
from fedpath.metrics.ranking import DEFAULT_KS, ranking_report, target_ranks
from fedpath.models.base import DEFAULT_REVIEW_THRESHOLD, NextStepModel, Predictions
from fedpath.schema import N_ACTIONS


def _predict_in_batches(
    model: NextStepModel, cases: Cases, batch_size: int
) -> tuple[np.ndarray, Predictions]:
    """Target ranks of the item cases, and the action / conversion outputs of all cases."""
    ranks, action_probs, convert_prob = [], [], []
    for start in range(0, len(cases), batch_size):
        batch = cases.subset(np.arange(start, min(start + batch_size, len(cases))))
        predictions = model.predict(batch)
        has_item = batch.next_item >= 0
        ranks.append(target_ranks(predictions.item_scores[has_item], batch.next_item[has_item]))
        action_probs.append(predictions.action_probs)
        convert_prob.append(predictions.convert_prob)
    outputs = Predictions(
        item_scores=np.empty((0, 0), dtype=np.float32),  # not kept: the ranks say all we need
        action_probs=np.concatenate(action_probs) if action_probs else np.empty((0, N_ACTIONS)),
        convert_prob=np.concatenate(convert_prob) if convert_prob else np.empty(0),
    )
    return (np.concatenate(ranks) if ranks else np.empty(0, dtype=np.int64)), outputs


def evaluate(
    model: NextStepModel,
    cases: Cases,
    *,
    ks: tuple[int, ...] = DEFAULT_KS,
    batch_size: int = 1024,
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
    n_bins: int = DEFAULT_N_BINS,
) -> dict[str, float]:
    """Every metric of ``model`` on ``cases``.

    Item metrics (``recall@k``, ``mrr@k``, ``ndcg@k``) average over the cases with a next item;
    action metrics over the cases with a known next action; conversion metrics and
    ``review_rate`` (share of cases whose action confidence is below ``review_threshold``)
    over all cases. A metric with no case to average over is NaN.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    ranks, outputs = _predict_in_batches(model, cases, batch_size)
    converts = cases.converts.astype(bool)
    review = outputs.needs_review(review_threshold)
    return {
        **ranking_report(ranks, ks),
        "action_accuracy": action_accuracy(outputs.action_probs, cases.next_action),
        "action_macro_f1": action_macro_f1(outputs.action_probs, cases.next_action),
        "action_ece": action_ece(outputs.action_probs, cases.next_action, n_bins=n_bins),
        "conversion_auc": conversion_auc(outputs.convert_prob, converts),
        "conversion_ece": expected_calibration_error(outputs.convert_prob, converts, n_bins=n_bins),
        "review_rate": float(review.mean()) if len(review) else float("nan"),
        "n_cases": float(len(cases)),
        "n_item_cases": float(len(ranks)),
    }
