"""Next-action and conversion metrics against hand-computed values."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from fedpath.metrics.classification import (
    action_accuracy,
    action_macro_f1,
    auc_undefined_reason,
    conversion_auc,
    exit_pr_auc,
    pr_auc,
)


def one_hot(predicted: list[int]) -> np.ndarray:
    """Action probabilities whose argmax is ``predicted``."""
    probs = np.full((len(predicted), 4), 0.1, dtype=np.float32)
    probs[np.arange(len(predicted)), predicted] = 0.7
    return probs


def test_accuracy_leaves_out_unknown_labels() -> None:
    # Prepare: the -1 case is predicted wrong but has no truth.
    probs = one_hot([0, 3, 3, 3, 1])
    labels = np.array([0, 0, 3, 3, -1])

    # Execute / Assert: 3 right out of the 4 known.
    assert action_accuracy(probs, labels) == pytest.approx(3 / 4)


def test_macro_f1_by_hand() -> None:
    # Prepare: view is right once of twice, exit twice with one false alarm.
    probs = one_hot([0, 3, 3, 3, 1])
    labels = np.array([0, 0, 3, 3, -1])

    # Execute
    score = action_macro_f1(probs, labels)

    # Assert: view P=1 R=1/2 F1=2/3; exit P=2/3 R=1 F1=4/5; mean = 11/15.
    assert score == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_macro_f1_averages_only_the_classes_present_in_the_labels() -> None:
    # Prepare: a cart is predicted, but the log has no carts (as Diginetica).
    probs = one_hot([0, 1, 3, 3])
    labels = np.array([0, 0, 3, 3])

    # Execute
    score = action_macro_f1(probs, labels)

    # Assert: view F1 = 2/3 (recall 1/2), exit F1 = 1; cart is not averaged in
    # (it would give (2/3 + 1 + 0) / 3 = 5/9).
    assert score == pytest.approx((2 / 3 + 1) / 2)


def test_no_known_label_gives_nan() -> None:
    probs = one_hot([0])
    assert math.isnan(action_accuracy(probs, np.array([-1])))
    assert math.isnan(action_macro_f1(probs, np.array([-1])))


def test_auc_by_hand() -> None:
    # Prepare: positives 0.35 and 0.8, negatives 0.1 and 0.4.
    probs = np.array([0.1, 0.4, 0.35, 0.8])
    converts = np.array([False, False, True, True])

    # Execute / Assert: of 4 (positive, negative) pairs, 0.35 < 0.4 is the one misordered.
    assert conversion_auc(probs, converts) == pytest.approx(3 / 4)


def test_auc_counts_a_tie_as_half() -> None:
    assert conversion_auc(np.array([0.5, 0.5]), np.array([False, True])) == pytest.approx(0.5)


def test_auc_with_one_class_is_nan_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare: no purchase at all, as in Diginetica.
    converts = np.zeros(3, dtype=bool)

    # Execute
    with caplog.at_level(logging.DEBUG, logger="fedpath.metrics.classification"):
        auc = conversion_auc(np.array([0.1, 0.2, 0.3]), converts)

    # Assert
    assert math.isnan(auc)
    assert "all 3 cases are non-converting" in caplog.text
    assert auc_undefined_reason(np.ones(2, dtype=bool)) == (
        "all 2 cases are converting; ROC-AUC needs both classes"
    )
    assert auc_undefined_reason(np.array([True, False])) is None


def test_exit_pr_auc_by_hand_over_known_cases() -> None:
    # Prepare: P(exit) 0.9, 0.8, 0.3, 0.2 for truths exit, view, exit, view; the -1 case drops.
    probs = np.full((5, 4), 0.0, dtype=np.float32)
    probs[:, 3] = [0.9, 0.8, 0.3, 0.2, 0.99]
    labels = np.array([3, 0, 3, 0, -1])

    # Execute
    value = exit_pr_auc(probs, labels)

    # Assert: AP = (1/1 + 2/3) / 2, the precision at each exit's rank
    assert value == pytest.approx((1 + 2 / 3) / 2)


def test_pr_auc_is_nan_with_one_class() -> None:
    assert math.isnan(pr_auc(np.array([0.2, 0.4]), np.array([False, False])))
