"""The wide part of the neural models: what a prefix's actions say outright, as a few numbers.

The action and conversion heads of a neural model otherwise see only the encoder's last state, a
vector trained mostly for the next item; "this session has already carted / paid" must then be
squeezed through it, and on Taobao the heads lost to gradient boosting on exactly such counts
(conversion PR-AUC 0.41 vs 0.66, issue 13). Wide & deep (Cheng et al. 2016) hands the heads
these features beside the deep state, so the encoder no longer has to learn to count.

Everything is computed from what every model already receives (a prefix's actions and length),
so no loader or ``Cases`` change is needed, and the weights that read the features are ordinary
model weights: they federate and SecAgg+ sums them like the rest. Time features (gaps between
events, dwell, hour) are left out: ``Cases`` carries no per-event times (only a session's
``start``), and adding them is a loader change.
"""

from __future__ import annotations

import numpy as np

from fedpath.models.popularity import N_LOGGED

LAST_ACTIONS = 2  # how many of the prefix's last actions are one-hot encoded
# log1p(length), then per logged action: log1p(count), share, ever, and one-hot of the last two
N_SESSION_FEATURES = 1 + N_LOGGED * (3 + LAST_ACTIONS)


def session_features(prefix_actions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[n, N_SESSION_FEATURES]`` float32 features of left-aligned prefixes.

    ``prefix_actions`` is ``[n, width]`` (only the first ``lengths[i]`` entries of row i are
    read), ``lengths`` ``[n]``. Columns: log1p of the length; for view, cart, purchase the log1p
    of its count so far, its share of the prefix and whether it occurred at all; then the last
    and the second-last action one-hot (all zero where the prefix is shorter). Counts are over
    the prefix as ``Cases`` holds it (its last ``max_len`` events).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    counts, last = action_history(prefix_actions, lengths)
    return np.column_stack(
        [
            np.log1p(lengths),
            np.log1p(counts),
            counts / np.maximum(lengths, 1)[:, None],
            counts > 0,
            *last,
        ]
    ).astype(np.float32)


def action_history(
    prefix_actions: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each logged action's count in each prefix (``[n, 3]``), and the one-hot ``[n, 3]`` of the
    last, second-last, ... (``LAST_ACTIONS``) action, all zero where the prefix is shorter: the
    action history the wide part and the scikit-learn baselines (``fedpath.baselines``) both read.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n, width = prefix_actions.shape
    real = np.arange(width)[None, :] < lengths[:, None]  # [n, width]
    actions = np.where(real, prefix_actions, -1)
    counts = np.stack([(actions == a).sum(axis=1) for a in range(N_LOGGED)], axis=1)
    last = []
    for back in range(1, LAST_ACTIONS + 1):
        column = np.clip(lengths - back, 0, None)
        step = np.where(lengths >= back, actions[np.arange(n), column], -1)
        last.append(np.stack([step == a for a in range(N_LOGGED)], axis=1))
    return counts, last
