"""The review gate: its cutoff is a promise on held-out data, for each kind of decision."""

from __future__ import annotations

import numpy as np
import pytest
from session_data import session

from fedpath.data.cases import expand_prefixes
from fedpath.models.base import Predictions
from fedpath.review import (
    ReviewGate,
    candidate_cutoffs,
    certified_cutoff,
    cutoff_counts,
    decide,
    lower_bound,
    risk_coverage,
)


def exit_world(n_sessions: int, seed: int):
    """Sessions of 1..4 views; a model whose P(exit) is the true chance of leaving at each step.

    Each step leaves with probability 0.05 (first step) to 0.95 (fourth), so the honest
    confidence spans the whole range and only part of the cases can be handled at 0.85.
    """
    rng = np.random.default_rng(seed)
    chance = np.array([0.05, 0.3, 0.6, 0.95])
    sessions = []
    for s in range(n_sessions):
        length = 1
        while length < 4 and rng.random() >= chance[length - 1]:
            length += 1
        sessions.append(session(f"s{s}", list(range(length))))
    cases = expand_prefixes(sessions)
    p_exit = chance[cases.lengths - 1]
    probs = np.column_stack([1 - p_exit, np.zeros((len(cases), 2)), p_exit]).astype(np.float32)
    return Predictions(np.empty((len(cases), 0)), probs, np.zeros(len(cases))), cases


def test_gate_fitted_on_valid_keeps_its_promise_on_test() -> None:
    # Prepare
    valid_outputs, valid = exit_world(1500, seed=0)
    test_outputs, test = exit_world(1500, seed=1)

    # Execute
    gate = ReviewGate(decision="exit", threshold=0.85).fit(valid_outputs, valid)
    report = gate.report(test_outputs, test)

    # Assert: steps 1 and 4 (confidence 0.95) are handled, steps 2 and 3 (0.7, 0.6) reviewed
    assert gate.cutoff_ == pytest.approx(0.85)
    assert report["gate_handled_accuracy"] >= 0.85
    assert 0.3 < report["gate_coverage"] < 0.9
    assert gate.needs_review(test_outputs).tolist() == np.isin(test.lengths, [2, 3]).tolist()


def test_gate_sends_everything_to_review_when_nothing_earns_the_promise() -> None:
    # Prepare: the model claims 0.99 but is right half the time
    cases = expand_prefixes([session(f"s{i}", [0, 1]) for i in range(200)])
    probs = np.tile([0.99, 0.0, 0.0, 0.01], (len(cases), 1)).astype(np.float32)
    outputs = Predictions(np.empty((len(cases), 0)), probs, np.zeros(len(cases)))

    # Execute
    gate = ReviewGate(decision="action").fit(outputs, cases)

    # Assert
    assert gate.cutoff_ == float("inf")
    assert gate.needs_review(outputs).all()
    assert gate.report(outputs, cases)["gate_coverage"] == 0.0


def test_yes_no_decisions_are_confident_either_way() -> None:
    outputs = Predictions(np.empty((2, 0)), np.zeros((2, 4)), np.array([0.1, 0.7]))
    answer, confidence = decide(outputs, "convert")
    assert answer.tolist() == [0, 1]
    assert confidence == pytest.approx([0.9, 0.7])
    with pytest.raises(ValueError, match="decision must be one of"):
        decide(outputs, "top-k")


def test_risk_coverage_by_hand_and_the_clopper_pearson_bound() -> None:
    # Prepare: confidences 0.9, 0.9, 0.6, 0.4 with outcomes right, wrong, right, wrong
    curve = risk_coverage(np.array([0.9, 0.6, 0.9, 0.4]), np.array([1, 1, 0, 0]))

    # Assert
    assert curve["cutoff"].tolist() == [0.9, 0.6, 0.4]
    assert curve["coverage"].tolist() == [0.5, 0.75, 1.0]
    assert curve["accuracy"] == pytest.approx([0.5, 2 / 3, 0.5])
    # 10 of 10 right: the 95% one-sided lower bound is 0.05 ** (1 / 10)
    assert lower_bound(10, 10, 0.05) == pytest.approx(0.05**0.1)


def test_cutoff_counts_by_hand_and_summed_halves_certify_the_union_cutoff() -> None:
    # Prepare: by hand at threshold 0.9 (candidates 0.90, 0.91, ..., 0.99)
    counts = cutoff_counts(np.array([0.995, 0.975, 0.5]), np.array([1, 0, 1]), 0.9)
    assert counts.tolist() == [[2] * 8 + [1] * 2, [1] * 10]
    # ... and the exit world cut in two "partners"
    outputs, cases = exit_world(1500, seed=0)
    gate = ReviewGate(decision="exit", threshold=0.85)
    confidence, correct = gate.outcomes(outputs, cases)
    half = len(confidence) // 2

    # Execute: each half counts its own cases; only the sum is certified
    summed = cutoff_counts(confidence[:half], correct[:half], 0.85) + cutoff_counts(
        confidence[half:], correct[half:], 0.85
    )

    # Assert: the same cutoff as the gate fitted on the union
    assert certified_cutoff(summed, 0.85) == gate.fit(outputs, cases).cutoff_ == pytest.approx(0.85)
    with pytest.raises(ValueError, match="counts must have shape"):
        certified_cutoff(summed[:, :3], 0.85)


@pytest.mark.parametrize(
    ("threshold", "first", "count"), [(0.85, 0.85, 15), (0.5, 0.5, 50), (0.99, 0.99, 1)]
)
def test_candidate_cutoffs_step_from_the_threshold_and_stay_below_one(threshold, first, count):
    # Execute
    cutoffs = candidate_cutoffs(threshold)
    # Assert: whole steps of 0.01, the last one 0.99 (np.arange gave a 16th, 0.99999..., at 0.85)
    assert len(cutoffs) == count
    assert cutoffs[0] == pytest.approx(first)
    assert cutoffs[-1] == pytest.approx(0.99)
    assert np.allclose(np.diff(cutoffs), 0.01)
