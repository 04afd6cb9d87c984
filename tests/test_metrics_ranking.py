"""Ranking metrics against hand-computed ranks and the protocol's stable-sort definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedpath.metrics import ranking
from fedpath.metrics.ranking import (
    mrr_at_k,
    ndcg_at_k,
    ranking_report,
    recall_at_k,
    target_ranks,
)


def test_ties_are_broken_by_vocabulary_index() -> None:
    # Prepare: items 1 and 2 tie at 0.5; item 3 (0.2) beats item 0 (0.1).
    scores = np.array([[0.1, 0.5, 0.5, 0.2]] * 4, dtype=np.float32)
    targets = np.array([0, 1, 2, 3])

    # Execute
    ranks = target_ranks(scores, targets)

    # Assert: by hand, the stable descending order is 1, 2, 3, 0.
    assert ranks.tolist() == [4, 1, 2, 3]


def test_ranks_equal_position_in_a_stable_descending_sort_across_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: many ties (integer scores), and blocks of 3 rows so the batched path is used.
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, size=(10, 9)).astype(np.float64)
    targets = rng.integers(0, 9, size=10)
    monkeypatch.setattr(ranking, "_BLOCK_ELEMENTS", 3 * 9)

    # Execute
    ranks = target_ranks(scores, targets)

    # Assert: the note's definition, a stable sort of the negated scores.
    order = np.argsort(-scores, axis=1, kind="stable")
    expected = [int(np.flatnonzero(order[i] == targets[i])[0]) + 1 for i in range(10)]
    assert ranks.tolist() == expected


def test_recall_mrr_ndcg_by_hand() -> None:
    # Prepare: four cases ranked 1, 3, 12 and 25.
    ranks = np.array([1, 3, 12, 25])

    # Execute / Assert at K = 10: hits are ranks 1 and 3.
    assert recall_at_k(ranks, 10) == pytest.approx(2 / 4)
    assert mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 3) / 4)
    assert ndcg_at_k(ranks, 10) == pytest.approx((1 / math.log2(2) + 1 / math.log2(4)) / 4)
    # At K = 20 rank 12 counts too: MRR = (1 + 1/3 + 1/12) / 4 = 17/48.
    assert recall_at_k(ranks, 20) == pytest.approx(3 / 4)
    assert mrr_at_k(ranks, 20) == pytest.approx(17 / 48)
    assert ndcg_at_k(ranks, 20) == pytest.approx((1 + 0.5 + 1 / math.log2(13)) / 4)


def test_report_names_every_metric_at_every_cut_off() -> None:
    # Prepare / Execute
    report = ranking_report(np.array([2]), ks=(1, 5))

    # Assert: rank 2 misses the top 1 and is hit at 5 with MRR 1/2.
    assert report == {
        "recall@1": 0.0,
        "mrr@1": 0.0,
        "ndcg@1": 0.0,
        "recall@5": 1.0,
        "mrr@5": 0.5,
        "ndcg@5": pytest.approx(1 / math.log2(3)),
    }


def test_no_case_gives_nan_not_a_warning() -> None:
    # Prepare / Execute
    report = ranking_report(np.empty(0, dtype=np.int64))

    # Assert
    assert all(math.isnan(value) for value in report.values())


@pytest.mark.parametrize(
    ("scores", "targets", "message"),
    [
        (np.array([[0.1, np.nan]]), np.array([0]), "NaN"),
        (np.array([[0.1, 0.2]]), np.array([2]), "targets must lie in 0..1"),
        (np.array([0.1, 0.2]), np.array([0]), "scores must be"),
    ],
)
def test_bad_inputs_are_refused(scores: np.ndarray, targets: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        target_ranks(scores, targets)


def test_cut_offs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ks must be positive"):
        ranking_report(np.array([1]), ks=(0,))
