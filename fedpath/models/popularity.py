"""Popularity, and the count machinery every count baseline shares.

Count models learn nothing but sums of counts. That makes them strong on small logs and lets a
federation combine partners EXACTLY: the secure sum of the partners' ``get_weights()`` equals the
weights of one fit on the union of their data. Every weight array is therefore an additive count;
nothing derived (probabilities, normalised scores) is ever stored.

Item scores follow the evaluation protocol's definition, ``primary(j) × 10⁶ + pop(j)``, in
float64. That lexicographic score does not survive float32 (whose 24-bit mantissa loses the
popularity tie-break once the primary count passes 16), so ``predict`` returns the score's index
among the batch's distinct scores instead: float32 holds it exactly, and order and ties are
preserved (``lexicographic_scores``).

Next action: P(next | last action of the prefix), Laplace-smoothed transition counts.
Conversion: P(session converts | furthest stage the prefix reached), Laplace-smoothed counts
of prediction cases. Both are counts over cases, so they federate exactly too.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fedpath.data.containers import Cases
from fedpath.models.base import EpochCallback, NextStepModel, Predictions
from fedpath.schema import N_ACTIONS, Action

PRIMARY_SCALE = 1e6  # the protocol's ×10⁶: the primary count outranks any popularity
FLOAT32_EXACT = 2**24  # float32 holds every integer up to this one exactly
N_LOGGED = int(Action.PURCHASE) + 1  # actions a prefix can end with (EXIT is never logged)


def lexicographic_scores(
    popularity: np.ndarray, primary: sparse.spmatrix | None, n: int
) -> np.ndarray:
    """[n, V] float32 scores with the order and ties of ``primary × 10⁶ + pop`` in every row.

    ``primary`` ([n, V], sparse) is zero but where a row has evidence, so most of a row scores
    ``pop``. Each score is replaced by its index among the distinct scores of the whole batch
    (every popularity and every nonzero-primary score): float32 holds that index exactly, and
    one sort of those few values replaces a sort of every [V] row.
    """
    coo = sparse.coo_matrix((n, len(popularity))) if primary is None else primary.tocoo()
    values = coo.data * PRIMARY_SCALE + popularity[coo.col]
    levels = np.unique(np.concatenate([popularity, values]))
    if len(levels) > FLOAT32_EXACT:
        raise ValueError(f"a batch must hold <= {FLOAT32_EXACT} distinct scores, got {len(levels)}")
    scores = np.empty((n, len(popularity)), dtype=np.float32)
    scores[:] = np.searchsorted(levels, popularity).astype(np.float32)
    scores[coo.row, coo.col] = np.searchsorted(levels, values)
    return scores


def last_items(cases: Cases) -> np.ndarray:
    """[n] the most recent item of every prefix."""
    return cases.prefixes[np.arange(len(cases)), cases.lengths - 1]


class Popularity(NextStepModel):
    """Scores every item by how often it occurs in the training sessions.

    Subclasses add a primary score (``_primary``) that popularity only breaks ties of, and the
    count arrays it needs (``_count``); the action and conversion parts are shared.
    """

    name = "popularity"

    def __init__(self, *, n_items: int, seed: int = 0, smoothing: float = 1.0) -> None:
        super().__init__(n_items=n_items, seed=seed)
        self.smoothing = smoothing

    # -- learning -------------------------------------------------------------------------
    def fit(
        self, train: Cases, valid: Cases | None = None, *, on_epoch: EpochCallback | None = None
    ) -> Popularity:
        """Count ``train`` from zero (``valid`` is unused).

        Counts are replaced, not added to the current weights: a federation gets the global
        model by summing partners' fresh counts once, and a warm start would count twice.
        """
        if self.n_items < 1:
            raise ValueError(f"n_items must be a positive integer, got {self.n_items}")
        if self.smoothing <= 0:
            raise ValueError(f"smoothing must be > 0 (Laplace pseudo-count), got {self.smoothing}")
        self._check_items(train)
        self.weights_ = self._count(train)
        if on_epoch is not None:
            on_epoch(1, {"n_cases": float(len(train))})
        return self

    def _check_items(self, cases: Cases) -> None:
        if cases.prefixes.shape[1] < 2:
            # With prefixes cut to one item every case has length 1, and _count could no
            # longer tell a session's first item from the others.
            raise ValueError(
                f"prefix width must be >= 2 for count models, got {cases.prefixes.shape[1]}"
            )
        items = cases.prefixes[cases.prefixes >= 0]
        targets = cases.next_item[cases.next_item >= 0]
        top = max(items.max(initial=-1), targets.max(initial=-1))
        if top >= self.n_items:
            raise ValueError(f"item indices must be < n_items={self.n_items}, got {top}")

    def _count(self, cases: Cases) -> dict[str, np.ndarray]:
        item_counts = np.zeros(self.n_items, dtype=np.int64)
        # An item occurs once as a session's first item (the length-1 prefix), then once per
        # time it is the next item of a prefix: together, every occurrence exactly once.
        np.add.at(item_counts, cases.prefixes[cases.lengths == 1, 0], 1)
        np.add.at(item_counts, cases.next_item[cases.next_item >= 0], 1)

        known = cases.next_action >= 0
        last_action = cases.prefix_actions[np.arange(len(cases)), cases.lengths - 1]
        action_counts = np.zeros((N_LOGGED, N_ACTIONS), dtype=np.int64)
        np.add.at(action_counts, (last_action[known], cases.next_action[known]), 1)

        conversion_counts = np.zeros((N_LOGGED, 2), dtype=np.int64)
        np.add.at(conversion_counts, (self._furthest_stage(cases), cases.converts.astype(int)), 1)
        return {
            "item_counts": item_counts,  # [V] occurrences in training sessions
            "action_counts": action_counts,  # [3, 4] last logged action -> next action
            "conversion_counts": conversion_counts,  # [3, 2] furthest stage -> (no, yes)
        }

    @staticmethod
    def _furthest_stage(cases: Cases) -> np.ndarray:
        """[n] the furthest action (view < cart < purchase) within each prefix."""
        width = cases.prefix_actions.shape[1]
        inside = np.arange(width) < cases.lengths[:, None]  # [n, max_len]
        return np.where(inside, cases.prefix_actions, 0).max(axis=1).astype(np.int64)

    # -- prediction -----------------------------------------------------------------------
    def predict(self, cases: Cases) -> Predictions:
        """Scores from counts: rank of ``primary × 10⁶ + pop``, smoothed action and conversion."""
        weights = self._fitted()
        popularity = weights["item_counts"].astype(np.float64)  # [V]
        item_scores = lexicographic_scores(popularity, self._primary(cases), len(cases))
        alpha = self.smoothing
        last_action = cases.prefix_actions[np.arange(len(cases)), cases.lengths - 1]
        transitions = weights["action_counts"][last_action] + alpha  # [n, 4]
        conversions = weights["conversion_counts"][self._furthest_stage(cases)] + alpha  # [n, 2]
        return Predictions(
            item_scores=item_scores,
            action_probs=(transitions / transitions.sum(axis=1, keepdims=True)).astype(np.float32),
            convert_prob=(conversions[:, 1] / conversions.sum(axis=1)).astype(np.float32),
        )

    def item_mass(self, cases: Cases, predictions: Predictions, items: np.ndarray) -> np.ndarray:
        """[n] the listed ``items``' ([n, k]) share of the row's counts, with Witten–Bell's
        allowance for a next item never counted.

        Count scores are ranks, not probabilities, so the mass is read off the counts the ranking
        follows: the primary counts where the prefix has any (``_primary``), else the popularity
        counts. A row of N counts over T distinct items gives the list ``held / (N + T)``: the
        plain share ``held / N`` would say 1 whenever the list holds every item counted (a last
        item seen once before), while T / (N + T) is the Witten–Bell estimate of the chance that
        the next item is one never seen after it. It is still no calibrated probability; the
        review gate's certified cutoff is what keeps the promise.
        """
        items = np.asarray(items, dtype=np.int64)
        popularity = self._fitted()["item_counts"].astype(np.float64)  # [V]
        seen = max(popularity.sum() + np.count_nonzero(popularity), 1.0)
        listed = popularity[items].sum(axis=1) / seen  # [n]
        primary = self._primary(cases)
        if primary is None:
            return listed
        primary = sparse.csr_matrix(primary)
        totals = np.asarray(primary.sum(axis=1)).ravel() + np.diff(primary.indptr)  # [n] N + T
        rows = np.repeat(np.arange(len(items)), items.shape[1])
        held = np.asarray(primary[rows, items.ravel()]).reshape(items.shape).sum(axis=1)
        return np.where(totals > 0, held / np.where(totals > 0, totals, 1.0), listed)

    def _primary(self, cases: Cases) -> sparse.spmatrix | None:
        """[n, V] sparse float64 score that popularity only breaks ties of; None for popularity."""
        return None

    # -- state ----------------------------------------------------------------------------
    def _fitted(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "weights_"):
            raise ValueError(f"{type(self).__name__} must be fitted or given weights first")
        return self.weights_

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            "item_counts": (self.n_items,),
            "action_counts": (N_LOGGED, N_ACTIONS),
            "conversion_counts": (N_LOGGED, 2),
        }

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of the count arrays; every one is additive across partners."""
        return {name: array.copy() for name, array in self._fitted().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Take count arrays (e.g. a secure sum of partners' weights)."""
        state = {}
        for name, shape in self._shapes().items():
            if name not in weights:
                raise ValueError(f"weights must contain {name!r}, got keys {sorted(weights)}")
            array = np.asarray(weights[name])
            if array.shape != shape:
                raise ValueError(f"weights[{name!r}] must have shape {shape}, got {array.shape}")
            state[name] = array.copy()
        self.weights_ = state
