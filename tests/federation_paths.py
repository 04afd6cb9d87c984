"""Tiny, fully predictable shopping paths for the federation tests.

Every path walks the catalogue in fixed steps (item i, then i + step, ...), so a small GRU4Rec
learns it in a few epochs and any damage to the model shows plainly in Recall@20. Actions and
channels vary by a fixed rule, so funnels can be counted by hand.
"""

from __future__ import annotations

import numpy as np

from fedpath.data.containers import Session, SplitDataset

N_ITEMS = 60
CHANNELS = ("app", "web", None)  # session k has channel CHANNELS[k % 3]
# Calibrated with Adam (the code default before conf/model/gru4rec.yaml became the one source).
TINY_GRU = {
    "embedding_size": 16,
    "hidden_size": 16,
    "batch_size": 32,
    "optimizer": "adam",
    "momentum": 0.0,
    "lr": 0.03,
    "dropout": 0.0,
}


def paths(n: int, seed: int, *, step: int = 1) -> list[Session]:
    """``n`` paths of 3-6 items; about a third end in a cart and a fifth in a purchase."""
    rng = np.random.default_rng(seed)
    sessions = []
    for k in range(n):
        length = int(rng.integers(3, 7))
        items = (int(rng.integers(N_ITEMS)) + step * np.arange(length)) % N_ITEMS
        actions = np.zeros(length, dtype=np.int8)
        draw = rng.random()
        if draw < 0.3:
            actions[-1] = 1  # cart, no purchase
        elif draw < 0.45:
            actions[-2:] = [1, 2]  # cart then purchase
        elif draw < 0.5:
            actions[-1] = 2  # "buy now": purchase without a cart
        sessions.append(
            Session(
                key=f"{seed}-{k}",
                items=items.astype(np.int64),
                actions=actions,
                start=0,
                channel=CHANNELS[k % 3],
            )
        )
    return sessions


def walk_split() -> SplitDataset:
    """240 train, 40 valid and 60 test paths over one 60-item vocabulary."""
    return SplitDataset(
        train=paths(240, 1),
        valid=paths(40, 2),
        test=paths(60, 3),
        vocab=[f"item-{i}" for i in range(N_ITEMS)],
    )
