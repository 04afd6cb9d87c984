"""Calibration and the review gate from partners' sums equal the central fit on their union."""

from __future__ import annotations

import numpy as np
import pytest
from session_data import session

from fedpath.calibration_sums import (
    calibration_from_counts,
    gate_counts,
    nll_sums,
    temperatures_from_nll,
)
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases
from fedpath.evaluate import calibrated_review
from fedpath.models.base import Predictions
from fedpath.models.calibration import DECISIONS


def overconfident_world(n_sessions: int, seed: int):
    """Sessions of 1-5 events, a fifth of them buying; a model twice as sure as it should be."""
    rng = np.random.default_rng(seed)
    sessions = []
    for s in range(n_sessions):
        length = int(rng.integers(1, 6))
        actions = [0] * length
        if rng.random() < 0.2:
            actions[-1] = 2
        sessions.append(session(f"s{s}", list(range(length)), actions))
    cases = expand_prefixes(sessions)
    truth = np.clip(cases.next_action, 0, 3)
    logits = rng.normal(size=(len(cases), 4)) + 1.5 * np.eye(4)[truth]
    sharp = np.exp(2 * logits)
    convert = 1 / (1 + np.exp(-2 * (rng.normal(size=len(cases)) + 1.5 * cases.converts - 1)))
    mass = rng.uniform(0.5, 1.0, size=len(cases))  # a one-item list, holding the next item
    listed = np.where(rng.random(len(cases)) < mass, cases.next_item, 99)  # with that chance
    outputs = Predictions(
        np.empty((len(cases), 0)),
        (sharp / sharp.sum(axis=1, keepdims=True)).astype(np.float32),
        convert.astype(np.float32),
        top_items=listed[:, None],
        item_mass=mass,
    )
    return outputs, cases


def test_partners_summed_statistics_give_the_central_temperatures_and_cutoffs() -> None:
    # Prepare: one valid set, cut by session into three "partners"
    outputs, cases = overconfident_world(900, seed=0)
    parts = [np.isin(cases.session_index % 3, [k]) for k in range(3)]
    central, _, temperatures = calibrated_review(outputs, cases, outputs, cases, threshold=0.8)

    # Execute: each partner sums its own cases; the server sees only the sums
    def own(mask: np.ndarray) -> tuple[Predictions, Cases]:
        p = Predictions(
            outputs.item_scores,
            outputs.action_probs[mask],
            outputs.convert_prob[mask],
            outputs.top_items[mask],
            outputs.item_mass[mask],
        )
        return p, cases.subset(mask)

    fitted = temperatures_from_nll(sum(nll_sums(*own(m)) for m in parts))
    counts = sum(gate_counts(fitted.apply(own(m)[0]), own(m)[1], 0.8) for m in parts)
    calibration = calibration_from_counts(fitted, counts, 0.8)

    # Assert: an overconfident model is cooled (T > 1), and every figure equals the central fit
    assert fitted == temperatures
    assert fitted.action > 1 and fitted.convert > 1
    assert calibration.cutoffs == {d: central[f"{d}_gate_cutoff"] for d in DECISIONS}
    assert any(np.isfinite(c) for c in calibration.cutoffs.values())
    assert np.isfinite(calibration.cutoffs["items"])  # the list's mass earns a cutoff too
    assert calibration.threshold == pytest.approx(0.8)
