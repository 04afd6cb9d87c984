"""The path baselines on hand-made sessions: what each one predicts, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
from session_data import session

from fedpath.baselines.features import SessionFeatures
from fedpath.baselines.heads import FeatureBaseline, LastActionMarkov, MajorityBaseline
from fedpath.data.cases import expand_prefixes
from fedpath.metrics.classification import action_macro_f1


def shop(n: int) -> list:
    """Carting shoppers buy next, browsers leave after two views: the action is learnable."""
    sessions = []
    for i in range(n):
        if i % 3 == 0:
            sessions.append(session(f"c{i}", [0, 1, 2], [0, 1, 2]))
        else:
            sessions.append(session(f"v{i}", [3 + i % 4, 1]))
    return sessions


def test_majority_predicts_the_train_mix_everywhere() -> None:
    # Prepare: 3 views, 1 exit among the next actions
    train = expand_prefixes([session("a", [0, 1, 2, 3])])

    # Execute
    predictions = MajorityBaseline(conversion_target="session").fit(train).predict(train)

    # Assert
    assert np.allclose(predictions.action_probs, [0.75, 0, 0, 0.25])
    assert np.allclose(predictions.convert_prob, 0.0)
    assert predictions.item_scores.shape == (4, 0)


def test_last_action_markov_counts_transitions_with_laplace_smoothing() -> None:
    # Prepare: after a cart comes a purchase (once); after views: cart once, exit once, view once
    train = expand_prefixes([session("a", [0, 1, 2], [0, 1, 2]), session("b", [0, 1])])

    # Execute
    probs = LastActionMarkov().fit(train).predict(train).action_probs

    # Assert: the cart row (case 1) is (1, 1, 1+1, 1) / 5
    assert np.allclose(probs[1], [0.2, 0.2, 0.4, 0.2])


@pytest.mark.parametrize("estimator", ["hgb", "logistic"])
def test_feature_baselines_learn_a_learnable_next_action(estimator: str) -> None:
    # Prepare
    cases = expand_prefixes(shop(60))

    # Execute
    predictions = FeatureBaseline(estimator=estimator).fit(cases).predict(cases)

    # Assert: well above the majority floor, and rows are distributions
    assert action_macro_f1(predictions.action_probs, cases.next_action) > 0.9
    assert np.allclose(predictions.action_probs.sum(axis=1), 1, atol=1e-5)


def test_feature_baseline_refuses_an_unknown_estimator_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"estimator must be one of \('hgb', 'logistic'\)"):
        FeatureBaseline(estimator="forest").fit(expand_prefixes(shop(3)))


def test_features_of_an_item_unseen_in_train_are_the_prior_mix() -> None:
    # Prepare
    features = SessionFeatures().fit(expand_prefixes(shop(6)))
    unseen = expand_prefixes([session("x", [40])])

    # Execute
    row = features.transform(unseen)[0]

    # Assert: zero popularity, then the train prior over the 4 actions
    assert row[-5] == 0
    assert np.allclose(row[-4:], features.prior_)
