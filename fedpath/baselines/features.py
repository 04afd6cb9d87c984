"""Session features of a prefix, for the scikit-learn baselines.

Computed from ``Cases`` only (what every fedpath model sees): the prefix's length, its action
counts and last actions, how many distinct items it holds, and what the train log says about
its last item (popularity, and the smoothed mix of actions that followed it). ``Cases`` carry
no timestamps or categories, so elapsed time, dwell, hour and category popularity are not
among them.
"""

from __future__ import annotations

import numpy as np

from fedpath.data.containers import Cases
from fedpath.models.popularity import last_items
from fedpath.models.session_features import action_history
from fedpath.schema import N_ACTIONS


class SessionFeatures:
    """Turns cases into a [n, n_features] float matrix; item statistics are learned on train.

    ``smoothing`` is the Laplace pseudo-count of the per-item next-action mix: an item seen once
    in train is pulled towards the log's overall mix rather than trusted outright.
    """

    def __init__(self, *, smoothing: float = 1.0) -> None:
        if smoothing <= 0:
            raise ValueError(f"smoothing must be > 0, got {smoothing}")
        self.smoothing = smoothing

    def fit(self, train: Cases) -> SessionFeatures:
        """Count, per last item, its occurrences and the next actions that followed it."""
        n_items = int(train.prefixes.max()) + 1 if len(train) else 0
        known = train.next_action >= 0
        last = last_items(train)
        follows = np.zeros((n_items, N_ACTIONS))
        np.add.at(follows, (last[known], train.next_action[known]), 1)
        overall = follows.sum(axis=0) + 1.0
        self.prior_ = overall / overall.sum()  # [4]
        self.follows_ = follows  # [n_items, 4]
        self.popularity_ = np.bincount(last, minlength=n_items).astype(np.float64)  # [n_items]
        return self

    def transform(self, cases: Cases) -> np.ndarray:
        """[n, n_features] float64; an item unseen in train gets zero counts and the prior mix."""
        width = cases.prefixes.shape[1]
        real = np.arange(width)[None, :] < cases.lengths[:, None]  # [n, width]
        counts, last_actions = action_history(cases.prefix_actions, cases.lengths)
        lengths = cases.lengths.astype(np.float64)
        items = np.where(real, cases.prefixes, -1)
        distinct = np.array([len(np.unique(row[row >= 0])) for row in items], dtype=np.float64)
        last = last_items(cases)
        seen = last < len(self.popularity_)
        safe = np.where(seen, last, 0)
        follows = np.where(seen[:, None], self.follows_[safe], 0.0)  # [n, 4]
        mix = (follows + self.smoothing * self.prior_) / (
            follows.sum(axis=1, keepdims=True) + self.smoothing
        )
        popularity = np.where(seen, self.popularity_[safe], 0.0)
        return np.column_stack(
            [
                np.log1p(lengths),
                counts,
                counts / lengths[:, None],
                *last_actions,
                distinct / lengths,
                np.log1p(popularity),
                mix,
            ]
        ).astype(np.float64)
