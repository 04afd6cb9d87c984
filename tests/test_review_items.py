"""The review gate's ``items`` decision: the recommended top-k list, right when it holds the next
item, its confidence the model's probability mass on the list."""

from __future__ import annotations

import math

import numpy as np
import pytest
from session_data import session

from fedpath.data.cases import expand_prefixes
from fedpath.evaluate import calibrated_review, item_ranks, predict_heads
from fedpath.models.base import Predictions
from fedpath.models.registry import build_model
from fedpath.review import ReviewGate, decide, top_items, truth


def test_top_items_breaks_ties_as_the_ranks_do_and_lists_best_first() -> None:
    scores = np.array([[2.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 5.0]])
    # row 0: item 0, then items 1 and 3 tie: the lower index (1) takes the last place
    assert top_items(scores, 2).tolist() == [[0, 1], [3, 0]]
    assert top_items(scores, 4).tolist() == [[0, 1, 3, 2], [3, 0, 1, 2]]
    with pytest.raises(ValueError, match="k must be in"):
        top_items(scores, 5)
    # many ties (count models' scores): the same list as a stable sort of every row
    many = np.random.default_rng(0).integers(0, 4, size=(50, 30)).astype(np.float32)
    assert (top_items(many, 7) == np.argsort(-many, axis=1, kind="stable")[:, :7]).all()


def test_items_decision_by_hand_neural_mass_is_the_softmax_of_the_listed_logits() -> None:
    # Prepare: two cases, a next item 0 (in the list) and an exit (no right list)
    cases = expand_prefixes([session("s", [2, 0])])  # prefix [2] -> next 0, prefix [2, 0] -> exit
    logits = np.array([[2.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 5.0]], dtype=np.float32)
    model = build_model("gru4rec", n_items=4)
    listed = top_items(logits, 2)
    mass = model.item_mass(cases, Predictions(logits, np.zeros((2, 4)), np.zeros(2)), listed)
    predictions = Predictions(
        np.empty((2, 0)), np.zeros((2, 4)), np.zeros(2), top_items=listed, item_mass=mass
    )

    # Execute
    answer, confidence = decide(predictions, "items")
    right = truth(cases, "items")
    known_confidence, correct = ReviewGate(decision="items").outcomes(predictions, cases)

    # Assert: softmax mass of the listed logits, worked by hand
    e = math.e
    assert confidence == pytest.approx([(e**2 + e) / (e**2 + 2 * e + 1), (e**5 + 1) / (e**5 + 3)])
    assert answer.tolist() == [[0, 1], [3, 0]]
    assert right.tolist() == [0, -1]  # the exit has no truth, as for the other decisions
    assert correct.tolist() == [True] and known_confidence == pytest.approx(confidence[:1])


def test_count_model_mass_is_the_witten_bell_share_of_its_primary_counts_else_popularity() -> None:
    # Prepare: 0 -> 1 three times, 0 -> 2 once; item 3 is never followed
    train = expand_prefixes([session(f"a{i}", [0, 1]) for i in range(3)] + [session("b", [0, 2])])
    model = build_model("markov", n_items=4).fit(train)
    cases = expand_prefixes([session("q", [0]), session("r", [3])])
    raw = model.predict(cases)

    # Execute
    mass = model.item_mass(cases, raw, top_items(raw.item_scores, 1))

    # Assert: from 0 the list [1] holds 3 of the 4 transitions, over 2 distinct successors:
    # 3 / (4 + 2); from 3 (no transition) the list is the most popular item, 0, with 4 of the
    # 8 occurrences over 3 distinct items: 4 / (8 + 3)
    assert top_items(raw.item_scores, 1).tolist() == [[1], [0]]
    assert mass == pytest.approx([3 / 6, 4 / 11])


def test_a_tiny_trained_model_certifies_an_items_cutoff_that_keeps_its_promise() -> None:
    # Prepare: after 0 the next item is always 1; after 2 it is 3 or 4 at random, so a
    # one-item list is sure of the first and a coin toss on the second
    rng = np.random.default_rng(0)

    def shop(n: int):
        return expand_prefixes(
            [session(f"s{i}", [0, 1] if i % 2 else [2, int(rng.integers(3, 5))]) for i in range(n)]
        )

    train, valid, test = shop(300), shop(300), shop(300)
    model = build_model("markov", n_items=5).fit(train)
    valid_out = predict_heads(model, valid, items_k=1)
    test_out = predict_heads(model, test, items_k=1)

    # Execute
    metrics, curves, _ = calibrated_review(valid_out, valid, test_out, test, threshold=0.85)
    gate = ReviewGate(decision="items", threshold=0.85).fit(valid_out, valid)
    confidence, correct = gate.outcomes(valid_out, valid)

    # Assert: certified, the handled share's hit rate on valid reaches the promise, and the
    # coin tosses go to review; a list's hit is exactly a rank within k
    assert np.isfinite(metrics["items_gate_cutoff"]) and "items" in curves
    handled = confidence >= metrics["items_gate_cutoff"]
    assert correct[handled].mean() >= 0.85
    assert 0 < metrics["items_gate_coverage"] < 1
    assert metrics["items_gate_handled_accuracy"] >= 0.85
    assert (correct == (item_ranks(model, valid) <= 1)).all()
