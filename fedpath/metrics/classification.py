"""Next-action and conversion metrics.

Cases whose next action is unknown (label -1, a censored session's last step) carry no truth, so
they are left out rather than counted as errors. Conversion AUC is undefined when only one class
occurs (the Diginetica log has no purchases at all): it is then NaN, and the reason is logged, so
that a federated evaluation on such a partner goes on instead of failing.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from fedpath.schema import Action

logger = logging.getLogger(__name__)


def _known(labels: np.ndarray) -> np.ndarray:
    return np.asarray(labels) >= 0


def action_accuracy(action_probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of known-label cases whose most likely action is the true one; NaN without any."""
    known = _known(labels)
    if not known.any():
        return float("nan")
    predicted = np.asarray(action_probs)[known].argmax(axis=1)
    return float((predicted == np.asarray(labels)[known]).mean())


def action_macro_f1(action_probs: np.ndarray, labels: np.ndarray) -> float:
    """F1 averaged over the action classes present among the true labels.

    A class absent from the log (Diginetica has no carts) has no F1 to speak of: averaging in a
    zero for it would only rescale the score by how many classes the log lacks. Predicting such a
    class is still penalised, through the recall of the true class it displaced.
    """
    known = _known(labels)
    if not known.any():
        return float("nan")
    truth = np.asarray(labels)[known].astype(np.int64)
    predicted = np.asarray(action_probs)[known].argmax(axis=1)
    present = np.unique(truth)
    return float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0.0))


def auc_undefined_reason(labels: np.ndarray) -> str | None:
    """Why ROC-AUC cannot be computed on ``labels``, or None when it can."""
    labels = np.asarray(labels, dtype=bool)
    if len(labels) == 0:
        return "no cases"
    if labels.all() or not labels.any():
        kind = "converting" if labels.all() else "non-converting"
        return f"all {len(labels)} cases are {kind}; ROC-AUC needs both classes"
    return None


def conversion_auc(convert_prob: np.ndarray, converts: np.ndarray) -> float:
    """ROC-AUC of the conversion probability; NaN (reason logged) when only one class occurs."""
    reason = auc_undefined_reason(converts)
    if reason is not None:
        logger.debug("conversion_auc is NaN: %s", reason)
        return float("nan")
    return float(roc_auc_score(np.asarray(converts, dtype=bool), np.asarray(convert_prob)))


def pr_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve) of ``scores`` for ``labels``.

    Unlike ROC-AUC it moves with the base rate: a rare event (an exit on Taobao's long sessions,
    a purchase still ahead) is found only if the top of the ranking is right. NaN, as
    ``conversion_auc``, when only one class occurs.
    """
    reason = auc_undefined_reason(labels)
    if reason is not None:
        logger.debug("pr_auc is NaN: %s", reason)
        return float("nan")
    return float(average_precision_score(np.asarray(labels, dtype=bool), np.asarray(scores)))


def exit_pr_auc(action_probs: np.ndarray, labels: np.ndarray) -> float:
    """``pr_auc`` of P(exit next) over the cases whose next action is known: who is leaving now."""
    known = _known(labels)
    exits = np.asarray(labels)[known] == Action.EXIT
    return pr_auc(np.asarray(action_probs)[known, Action.EXIT], exits)
