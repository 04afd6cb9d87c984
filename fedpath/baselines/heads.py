"""The baselines: majority class, last-action Markov, and scikit-learn on session features.

Each is a small estimator in scikit-learn's manner: the constructor only stores keyword
parameters, ``fit(train)`` learns (state with a trailing underscore), ``predict(cases)`` answers
``Predictions`` with an empty item-score matrix. ``conversion_target`` names the question the
conversion probability answers (``fedpath.targets.CONVERSION_TARGETS``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fedpath.baselines.features import SessionFeatures
from fedpath.data.containers import Cases
from fedpath.models.base import Predictions
from fedpath.models.popularity import N_LOGGED
from fedpath.schema import N_ACTIONS
from fedpath.targets import CONVERSION_TARGETS, conversion_label

ESTIMATORS = ("hgb", "logistic")  # HistGradientBoosting, standardized logistic regression
CLASS_WEIGHTS = ("balanced", None)  # balanced: each action class weighs the same in the loss


class PathBaseline(ABC):
    """Predicts the next action and the conversion target of a prefix."""

    name: str = ""

    def __init__(self, *, conversion_target: str = "ahead") -> None:
        self.conversion_target = conversion_target

    def fit(self, train: Cases) -> PathBaseline:
        """Validate, then learn from the train cases."""
        if self.conversion_target not in CONVERSION_TARGETS:
            raise ValueError(
                f"conversion_target must be one of {CONVERSION_TARGETS}, "
                f"got {self.conversion_target!r}"
            )
        if not (train.next_action >= 0).any():
            raise ValueError("train must hold at least one case with a known next action, got 0")
        return self._fit(train, conversion_label(train, self.conversion_target))

    @abstractmethod
    def _fit(self, train: Cases, converts: np.ndarray) -> PathBaseline: ...

    @abstractmethod
    def predict(self, cases: Cases) -> Predictions:
        """Action probabilities [n, 4] and conversion probability [n]; no item scores."""


def _predictions(action_probs: np.ndarray, convert_prob: np.ndarray) -> Predictions:
    n = len(convert_prob)
    return Predictions(
        item_scores=np.empty((n, 0), np.float32),
        action_probs=np.asarray(action_probs, np.float32),
        convert_prob=np.asarray(convert_prob, np.float32),
    )


class MajorityBaseline(PathBaseline):
    """The train log's action mix and conversion rate for every prefix: the floor."""

    name = "majority"

    def _fit(self, train: Cases, converts: np.ndarray) -> MajorityBaseline:
        known = train.next_action[train.next_action >= 0]
        self.action_mix_ = np.bincount(known, minlength=N_ACTIONS) / len(known)
        self.convert_rate_ = float(converts.mean())
        return self

    def predict(self, cases: Cases) -> Predictions:
        n = len(cases)
        return _predictions(np.tile(self.action_mix_, (n, 1)), np.full(n, self.convert_rate_))


class LastActionMarkov(PathBaseline):
    """P(next action | last action) and P(convert | last action), Laplace-smoothed counts."""

    name = "last-action Markov"

    def _fit(self, train: Cases, converts: np.ndarray) -> LastActionMarkov:
        last = train.prefix_actions[np.arange(len(train)), train.lengths - 1].astype(np.int64)
        known = train.next_action >= 0
        transitions = np.ones((N_LOGGED, N_ACTIONS))
        np.add.at(transitions, (last[known], train.next_action[known]), 1)
        outcomes = np.ones((N_LOGGED, 2))
        np.add.at(outcomes, (last, converts.astype(np.int64)), 1)
        self.transitions_ = transitions / transitions.sum(axis=1, keepdims=True)
        self.convert_rate_ = outcomes[:, 1] / outcomes.sum(axis=1)
        return self

    def predict(self, cases: Cases) -> Predictions:
        last = cases.prefix_actions[np.arange(len(cases)), cases.lengths - 1].astype(np.int64)
        return _predictions(self.transitions_[last], self.convert_rate_[last])


class FeatureBaseline(PathBaseline):
    """A scikit-learn classifier per question on ``SessionFeatures``.

    ``estimator``: ``hgb`` (HistGradientBoosting, early stopping on an internal 10% split) or
    ``logistic`` (standardized features, L2, lbfgs). ``class_weight="balanced"`` weighs each
    action class by the inverse of its frequency, as a data scientist aiming at macro-F1 would;
    the conversion classifier is left unweighted so its probability stays a probability.
    """

    def __init__(
        self,
        *,
        estimator: str = "hgb",
        class_weight: str | None = "balanced",
        conversion_target: str = "ahead",
        seed: int = 0,
    ) -> None:
        super().__init__(conversion_target=conversion_target)
        self.estimator = estimator
        self.class_weight = class_weight
        self.seed = seed

    @property
    def name(self) -> str:  # type: ignore[override]
        label = {"hgb": "HistGradientBoosting", "logistic": "logistic regression"}
        weighting = ", balanced" if self.class_weight == "balanced" else ""
        return f"{label.get(self.estimator, self.estimator)}{weighting}"

    def _classifier(self, class_weight: str | None) -> ClassifierMixin:
        if self.estimator == "hgb":
            return HistGradientBoostingClassifier(
                class_weight=class_weight, early_stopping=True, random_state=self.seed
            )
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(class_weight=class_weight, max_iter=2000, random_state=self.seed),
        )

    def _fit(self, train: Cases, converts: np.ndarray) -> FeatureBaseline:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(
                f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}"
            )
        self.features_ = SessionFeatures().fit(train)
        x = self.features_.transform(train)
        known = train.next_action >= 0
        self.action_model_ = self._classifier(self.class_weight).fit(
            x[known], train.next_action[known]
        )
        self.constant_convert_ = None if len(np.unique(converts)) > 1 else float(converts[0])
        if self.constant_convert_ is None:
            self.convert_model_ = self._classifier(None).fit(x, converts)
        return self

    def predict(self, cases: Cases) -> Predictions:
        x = self.features_.transform(cases)
        action_probs = np.zeros((len(cases), N_ACTIONS))
        action_probs[:, self.action_model_.classes_] = self.action_model_.predict_proba(x)
        if self.constant_convert_ is not None:
            convert = np.full(len(cases), self.constant_convert_)
        else:
            convert = self.convert_model_.predict_proba(x)[:, 1]
        return _predictions(action_probs, convert)
