"""One evaluation for every model: next item, next action, conversion, calibration, review rate.

``calibrated_review`` adds what a merchant relies on: per-head temperatures fitted on valid,
ECE before and after, and for each decision a review gate certified on valid and checked on test
(``fedpath.review``).

Predictions are made ``batch_size`` cases at a time and only the target ranks and the small
action / conversion outputs are kept, so memory stays at batch_size × V scores whatever the
number of cases.
"""

from __future__ import annotations

import numpy as np

from fedpath.data.containers import Cases
from fedpath.metrics.calibration import DEFAULT_N_BINS, action_ece, expected_calibration_error
from fedpath.metrics.classification import (
    action_accuracy,
    action_macro_f1,
    conversion_auc,
    exit_pr_auc,
    pr_auc,
)
from fedpath.metrics.ranking import DEFAULT_KS, ranking_report, target_ranks
from fedpath.models.base import DEFAULT_REVIEW_THRESHOLD, NextStepModel, Predictions
from fedpath.models.calibration import DEFAULT_ITEMS_K
from fedpath.models.temperature import Temperatures
from fedpath.review import DECISIONS, ReviewGate, risk_coverage, top_items
from fedpath.schema import N_ACTIONS
from fedpath.targets import purchase_ahead


def _predict_in_batches(
    model: NextStepModel, cases: Cases, batch_size: int, items_k: int | None = None
) -> tuple[np.ndarray, Predictions]:
    """Target ranks of the item cases, and the action / conversion outputs of all cases; with
    ``items_k``, also each case's top-``items_k`` list and the model's mass on it, computed batch
    by batch like the ranks (never an [n, n_items] array for the whole split)."""
    ranks, action_probs, convert_prob, lists, masses = [], [], [], [], []
    for start in range(0, len(cases), batch_size):
        batch = cases.subset(np.arange(start, min(start + batch_size, len(cases))))
        predictions = model.predict(batch)
        has_item = batch.next_item >= 0
        ranks.append(target_ranks(predictions.item_scores[has_item], batch.next_item[has_item]))
        action_probs.append(predictions.action_probs)
        convert_prob.append(predictions.convert_prob)
        if items_k is not None:
            # a catalogue shorter than the list: the list is the whole catalogue
            k = min(items_k, predictions.item_scores.shape[1])
            lists.append(top_items(predictions.item_scores, k))
            masses.append(model.item_mass(batch, predictions, lists[-1]))
    outputs = Predictions(
        item_scores=np.empty((0, 0), dtype=np.float32),  # not kept: the ranks say all we need
        action_probs=np.concatenate(action_probs) if action_probs else np.empty((0, N_ACTIONS)),
        convert_prob=np.concatenate(convert_prob) if convert_prob else np.empty(0),
        top_items=(np.concatenate(lists) if lists else np.empty((0, items_k), np.int64))
        if items_k is not None
        else None,
        item_mass=(np.concatenate(masses) if masses else np.empty(0))
        if items_k is not None
        else None,
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
    over all cases. ``exit_pr_auc`` ranks who leaves next; ``ahead_auc`` / ``ahead_pr_auc`` score
    the conversion probability against a purchase still following the prefix. A metric with no
    case to average over is NaN.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    ranks, outputs = _predict_in_batches(model, cases, batch_size)
    converts = cases.converts.astype(bool)
    ahead = purchase_ahead(cases)
    review = outputs.needs_review(review_threshold)
    return {
        **ranking_report(ranks, ks),
        "action_accuracy": action_accuracy(outputs.action_probs, cases.next_action),
        "action_macro_f1": action_macro_f1(outputs.action_probs, cases.next_action),
        "action_ece": action_ece(outputs.action_probs, cases.next_action, n_bins=n_bins),
        "exit_pr_auc": exit_pr_auc(outputs.action_probs, cases.next_action),
        "conversion_auc": conversion_auc(outputs.convert_prob, converts),
        "conversion_pr_auc": pr_auc(outputs.convert_prob, converts),
        "ahead_auc": conversion_auc(outputs.convert_prob, ahead),
        "ahead_pr_auc": pr_auc(outputs.convert_prob, ahead),
        "conversion_ece": expected_calibration_error(outputs.convert_prob, converts, n_bins=n_bins),
        "review_rate": float(review.mean()) if len(review) else float("nan"),
        "n_cases": float(len(cases)),
        "n_item_cases": float(len(ranks)),
    }


def item_ranks(model: NextStepModel, cases: Cases, *, batch_size: int = 1024) -> np.ndarray:
    """The target rank of each case with a next item, scored ``batch_size`` cases at a time."""
    return _predict_in_batches(model, cases, batch_size)[0]


def predict_heads(
    model: NextStepModel,
    cases: Cases,
    *,
    batch_size: int = 1024,
    items_k: int | None = DEFAULT_ITEMS_K,
) -> Predictions:
    """The action and conversion outputs of ``model`` on ``cases``, and (unless ``items_k`` is
    None) each case's top-``items_k`` list with its mass; the item scores are not kept."""
    return _predict_in_batches(model, cases, batch_size, items_k)[1]


def calibrated_review(
    valid_outputs: Predictions,
    valid: Cases,
    test_outputs: Predictions,
    test: Cases,
    *,
    threshold: float = DEFAULT_REVIEW_THRESHOLD,
    decisions: tuple[str, ...] = DECISIONS,
    conversion_target: str = "session",
    n_bins: int = DEFAULT_N_BINS,
) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]], Temperatures]:
    """Temperatures and gates fitted on valid, judged on test.

    Returns (metrics, risk–coverage curve of each decision on test, temperatures). Metrics:
    ``action_temperature`` / ``convert_temperature``; test ``action_ece`` / ``conversion_ece``
    before (``*_raw``) and after calibration; per decision ``<decision>_gate_cutoff``,
    ``<decision>_gate_coverage`` and ``<decision>_gate_handled_accuracy``, the share the gate
    lets through and how often those decisions are right. The ``items`` decision needs outputs
    with their lists (``predict_heads``); outputs without them skip it.
    """
    converts_valid = valid.converts if conversion_target == "session" else purchase_ahead(valid)
    temperatures = Temperatures.fit(valid_outputs, valid.next_action, converts_valid)
    valid_cal, test_cal = temperatures.apply(valid_outputs), temperatures.apply(test_outputs)
    converts = test.converts if conversion_target == "session" else purchase_ahead(test)
    metrics = {
        "action_temperature": temperatures.action,
        "convert_temperature": temperatures.convert,
        "action_ece_raw": action_ece(test_outputs.action_probs, test.next_action, n_bins=n_bins),
        "action_ece": action_ece(test_cal.action_probs, test.next_action, n_bins=n_bins),
        "conversion_ece_raw": expected_calibration_error(
            test_outputs.convert_prob, converts.astype(bool), n_bins=n_bins
        ),
        "conversion_ece": expected_calibration_error(
            test_cal.convert_prob, converts.astype(bool), n_bins=n_bins
        ),
    }
    curves = {}
    for decision in decisions:
        if decision == "items" and valid_outputs.top_items is None:
            continue  # outputs scored without their lists (items_k=None)
        gate = ReviewGate(
            decision=decision, threshold=threshold, conversion_target=conversion_target
        ).fit(valid_cal, valid)
        metrics.update({f"{decision}_{k}": v for k, v in gate.report(test_cal, test).items()})
        curves[decision] = risk_coverage(*gate.outcomes(test_cal, test))
    return metrics, curves, temperatures
