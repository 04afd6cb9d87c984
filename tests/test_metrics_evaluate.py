"""evaluate(): every metric assembled over the right cases, independent of the batch size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session
from fedpath.evaluate import evaluate
from fedpath.models.popularity import Popularity


def view_sessions(*paths: list[int]) -> list[Session]:
    return [
        Session(key=f"s{n}", items=np.array(p), actions=np.zeros(len(p), dtype=np.int8), start=n)
        for n, p in enumerate(paths)
    ]


@pytest.fixture(scope="module")
def model() -> Popularity:
    # Occurrences: item 0: 1, item 1: 3, item 2: 2, item 3: 1 -> ranks 1:1, 2:2, 0:3, 3:4.
    # Next actions after a view: view 4, exit 3 -> (4+1, 0+1, 0+1, 3+1) / 11.
    # Furthest stage view in all 7 prefixes, none converting -> P(convert) = (0+1) / (7+2).
    return Popularity(n_items=4).fit(expand_prefixes(view_sessions([0, 1, 2], [1, 2], [3, 1])))


TEST = expand_prefixes(view_sessions([0, 3, 2]))  # item cases: target 3 (rank 4), 2 (rank 2)


def test_metrics_by_hand(model: Popularity) -> None:
    # Execute
    metrics = evaluate(model, TEST, ks=(1, 3), review_threshold=0.5)

    # Assert: item metrics over the 2 item cases, ranks 4 and 2.
    assert metrics["recall@1"] == 0.0
    assert metrics["recall@3"] == pytest.approx(1 / 2)
    assert metrics["mrr@3"] == pytest.approx((0 + 1 / 2) / 2)
    assert metrics["ndcg@3"] == pytest.approx((0 + 1 / math.log2(3)) / 2)
    assert (metrics["n_cases"], metrics["n_item_cases"]) == (3, 2)
    # Labels view, view, exit; "view" is always predicted: accuracy 2/3;
    # F1 view = 2·(2/3)·1 / (2/3 + 1) = 4/5, F1 exit = 0, macro = 2/5.
    assert metrics["action_accuracy"] == pytest.approx(2 / 3)
    assert metrics["action_macro_f1"] == pytest.approx(2 / 5)
    # Confidence 5/11 everywhere: |2/3 - 5/11| in one bin; all below 0.5, so all reviewed.
    assert metrics["action_ece"] == pytest.approx(2 / 3 - 5 / 11, abs=1e-6)
    assert metrics["review_rate"] == 1.0
    # No test session converts: AUC undefined; ECE = |0 - 1/9|.
    assert math.isnan(metrics["conversion_auc"])
    assert metrics["conversion_ece"] == pytest.approx(1 / 9, abs=1e-6)


def test_review_rate_follows_the_threshold(model: Popularity) -> None:
    # Confidence is 5/11 ≈ 0.4545: a threshold just under it sends nothing to review.
    assert evaluate(model, TEST, review_threshold=0.45)["review_rate"] == 0.0


def test_batch_size_does_not_change_any_figure(model: Popularity) -> None:
    # Prepare
    cases = expand_prefixes(view_sessions([0, 1, 2, 3], [2, 0], [1, 3, 0]))

    # Execute
    one_by_one = evaluate(model, cases, batch_size=1)
    all_at_once = evaluate(model, cases, batch_size=1024)

    # Assert
    assert one_by_one.keys() == all_at_once.keys()
    for key, value in all_at_once.items():
        assert one_by_one[key] == pytest.approx(value, nan_ok=True), key


def test_default_keys(model: Popularity) -> None:
    keys = set(evaluate(model, TEST))
    for k in (5, 10, 20):
        assert {f"recall@{k}", f"mrr@{k}", f"ndcg@{k}"} <= keys
    assert {"action_accuracy", "action_macro_f1", "conversion_auc", "action_ece"} <= keys
    assert {"conversion_ece", "review_rate", "n_cases", "n_item_cases"} <= keys


def test_batch_size_must_be_positive(model: Popularity) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        evaluate(model, TEST, batch_size=0)


def test_no_case_gives_nan_metrics_not_an_error(model: Popularity) -> None:
    # Execute: a partner without test sessions.
    metrics = evaluate(model, expand_prefixes([]))

    # Assert
    assert (metrics["n_cases"], metrics["n_item_cases"]) == (0, 0)
    assert math.isnan(metrics["recall@20"]) and math.isnan(metrics["action_accuracy"])
    assert math.isnan(metrics["review_rate"]) and math.isnan(metrics["conversion_auc"])
