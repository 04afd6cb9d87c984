"""The two shapes data takes after loading: sessions, and the prediction cases cut from them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Session:
    """One shopping path, items already mapped to vocabulary indices ``0..V-1``.

    ``censored`` marks a session still open when the log was cut: its last event is not an exit,
    so the exit case of that session is unknown (label -1) rather than EXIT.
    """

    key: str
    items: np.ndarray  # [length] int64 vocabulary indices
    actions: np.ndarray  # [length] int8 Action values (VIEW/CART/PURCHASE)
    start: int  # timestamp (ms) of the first event
    channel: str | None = None
    category: str | None = None
    source: str | None = None
    censored: bool = False

    def __len__(self) -> int:
        return len(self.items)

    @property
    def converts(self) -> bool:
        """Whether the shopper paid at any point of this session."""
        return bool((self.actions == 2).any())


@dataclass(frozen=True)
class SplitDataset:
    """Train / valid / test sessions over one vocabulary (train items, first-appearance order)."""

    train: list[Session]
    valid: list[Session]
    test: list[Session]
    vocab: list[str]  # vocab[i] = raw (or hashed) item id of index i
    stats: dict[str, float | int] = field(default_factory=dict)
    # Why a split came out empty (its metrics are then n/a), for the log and the run report.
    warnings: tuple[str, ...] = ()

    @property
    def n_items(self) -> int:
        return len(self.vocab)


PAD = -1  # padding value of prefix arrays


@dataclass(frozen=True)
class Cases:
    """Prediction cases: every prefix of every session, and what came next.

    Prefixes are left-aligned in ``prefixes[i, :lengths[i]]`` (the *last* ``max_len`` items of the
    path), padded with ``PAD``. A session of length n yields n cases: prefixes 1..n-1 predict an
    item and an action; prefix n predicts EXIT (or -1 when the session is censored) and has
    ``next_item == -1``. Item metrics use the cases with ``next_item >= 0`` only.
    """

    prefixes: np.ndarray  # [n, max_len] int64
    prefix_actions: np.ndarray  # [n, max_len] int8
    lengths: np.ndarray  # [n] int64, 1..max_len
    next_item: np.ndarray  # [n] int64, -1 when the next step is not an item
    next_action: np.ndarray  # [n] int8, 0..3, -1 when unknown (censored)
    converts: np.ndarray  # [n] bool: the session this prefix belongs to contains a purchase
    session_index: np.ndarray  # [n] int64: index of the session in the list it was cut from

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, mask: np.ndarray) -> Cases:
        """The cases where ``mask`` is true (a boolean or index array)."""
        return Cases(
            prefixes=self.prefixes[mask],
            prefix_actions=self.prefix_actions[mask],
            lengths=self.lengths[mask],
            next_item=self.next_item[mask],
            next_action=self.next_action[mask],
            converts=self.converts[mask],
            session_index=self.session_index[mask],
        )

    @property
    def item_cases(self) -> Cases:
        """Only the cases whose next step is an item (the session-recommendation cases)."""
        return self.subset(self.next_item >= 0)


@dataclass(frozen=True)
class Partner:
    """One partner's data island, simulated or its own log: its split over the global vocabulary."""

    index: int
    name: str
    data: SplitDataset
    # The natural groups (platforms, categories) merged into this partner, largest first; empty
    # for iid and Dirichlet partners, which are drawn, not grouped.
    groups: tuple[str, ...] = ()
