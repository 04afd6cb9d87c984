"""The synthetic shop's catalogue: items, their categories, prices, popularity and successors.

Built once per seed, so every chunk of sessions walks the same shop. Items are numbered in
blocks by category, most popular first inside a block, which turns "an item of category c
drawn by popularity" into one ``searchsorted`` on a table of per-category cumulative weights.
Successor lists are never stored: successor j of item i is a counter-based draw keyed by
(i, j), the same every time it is asked for, so a ten-million-item shop costs no memory for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedpath.synth.config import SynthConfig
from fedpath.synth.randomness import Stream, stream_key, uniforms

ITEM_PREFIX = "syn-item-"
_SINKHORN_ROUNDS = 200
_SELF_REDRAWS = 8


@dataclass(frozen=True)
class Catalog:
    """Items ``0..n_items-1`` in category blocks; every table a session walk draws from.

    Category mixes are rows: one per platform, then one last row for the whole shop (the mix
    successor lists are drawn from).
    """

    category_starts: np.ndarray  # [n_categories + 1] first item of each category block
    item_category: np.ndarray  # [n_items] int64
    item_table: np.ndarray  # [n_items] category + cumulative popularity inside the category
    item_price: np.ndarray  # [n_items] float64, rounded to cents
    item_labels: np.ndarray  # [n_items] object: "syn-item-<n>", numbered in shuffled order
    mixes: np.ndarray  # [n_platforms + 1, n_categories] category preferences, rows sum to 1
    mix_table: np.ndarray  # [(n_platforms + 1) * n_categories] row + cumulative preference
    mix_stay: np.ndarray  # [n_platforms + 1] P(a fresh move keeps the current category)
    successor_cumulative: np.ndarray  # [n_successors] cumulative pick weights, last = 1
    successor_keys: tuple[int, int, int]  # stream keys: stay, category, item

    @property
    def n_categories(self) -> int:
        return len(self.category_starts) - 1

    @property
    def shop_row(self) -> int:
        """The row of ``mixes`` that is the whole shop's category mix."""
        return len(self.mixes) - 1

    def draw_items(self, categories: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One item per category by popularity inside it; ``u`` uniform in [0, 1)."""
        return draw_in_segments(self.item_table, self.category_starts, categories, u)

    def draw_categories(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One category per mix row by that row's preferences."""
        n = self.n_categories
        starts = np.arange(len(self.mixes) + 1) * n
        return draw_in_segments(self.mix_table, starts, rows, u) - rows * n

    def fresh_items(
        self,
        rows: np.ndarray,
        current: np.ndarray,
        u_stay: np.ndarray,
        u_category: np.ndarray,
        u_item: np.ndarray,
    ) -> np.ndarray:
        """Items a shopper on ``current`` moves to by popularity, keeping the category or not."""
        stay = u_stay < self.mix_stay[rows]
        redrawn = self.draw_categories(rows, u_category)
        return self.draw_items(np.where(stay, self.item_category[current], redrawn), u_item)

    def successors(self, items: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Successor number ``slots`` of each item: a fixed draw of a fresh move (shop mix).

        Fixed lists are what gives first-order models their signal: a shopper leaving item i
        for a successor goes to one of the same few items every time. An item is not its own
        successor (a repeat is a move of its own): such a draw is redrawn under a new counter.
        """
        k = len(self.successor_cumulative)
        out = items.copy()
        pending = np.arange(len(items))
        shop = np.full(len(items), self.shop_row)
        for attempt in range(_SELF_REDRAWS):
            owner = items[pending]
            step = slots[pending] + attempt * k
            u = [uniforms(key, owner, step) for key in self.successor_keys]
            out[pending] = self.fresh_items(shop[pending], owner, *u)
            pending = pending[out[pending] == owner]
            if len(pending) == 0:
                break
        return out


def draw_in_segments(
    table: np.ndarray, starts: np.ndarray, segments: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Positions drawn inside each segment of a ``segment_table`` by its weights.

    Segment s occupies ``table[starts[s]:starts[s + 1]]`` with values in (s, s + 1], so a
    single sorted search serves every segment at once. Zero-weight positions are never drawn.
    """
    position = np.searchsorted(table, segments + u, side="right")
    return np.clip(position, starts[segments], starts[segments + 1] - 1)


def segment_table(weights: list[np.ndarray]) -> np.ndarray:
    """Concatenated cumulative weights, segment s shifted into [s, s + 1]."""
    parts = [s + np.cumsum(w) / w.sum() for s, w in enumerate(weights)]
    for s, part in enumerate(parts):
        part[-1] = s + 1.0  # no rounding gap at the segment's end
    return np.concatenate(parts)


def items_per_category(shares: np.ndarray, n_items: int) -> np.ndarray:
    """Block sizes proportional to the shares, each at least 1, summing to ``n_items``.

    Equal per-item weight across blocks keeps the catalogue-wide rank-frequency curve a
    Zipf of the configured exponent once categories are drawn by their shares.
    """
    sizes = np.maximum(1, np.floor(shares * n_items).astype(np.int64))
    while sizes.sum() > n_items:  # only when the minimum of 1 overshoots: take from the largest
        sizes[np.argmax(sizes)] -= 1
    remainder = shares * n_items - sizes
    sizes[np.argsort(-remainder, kind="stable")[: n_items - sizes.sum()]] += 1
    return sizes


def tilted_preferences(
    shares: np.ndarray, n_platforms: int, skew: float, rng: np.random.Generator
) -> np.ndarray:
    """Per-platform category preferences that differ, yet average to ``shares``.

    Each platform tilts the shares by a log-normal factor per category; Sinkhorn scaling then
    restores the column sums (platforms are equally large), so partners are non-IID while the
    whole log keeps the measured category shares.
    """
    joint = shares * np.exp(skew * rng.standard_normal((n_platforms, len(shares))))
    for _ in range(_SINKHORN_ROUNDS):
        joint *= (1.0 / n_platforms) / joint.sum(axis=1, keepdims=True)
        joint *= shares / joint.sum(axis=0, keepdims=True)
    return joint / joint.sum(axis=1, keepdims=True)


def stay_probability(preferences: np.ndarray, same_category_rate: float) -> np.ndarray:
    """P(keep the category) per row so that a move lands in the same category at the given rate.

    A move keeps the category with probability s, else redraws it from the preferences p (which
    may land on the same one): P(same) = s + (1 - s) Σp². Redrawing from p, rather than from p
    without the current category, keeps p the stationary category mix.
    """
    collision = (preferences**2).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        stay = (same_category_rate - collision) / (1.0 - collision)
    return np.clip(np.nan_to_num(stay, nan=1.0), 0.0, 1.0)


def build_catalog(config: SynthConfig, *, seed: int) -> Catalog:
    """The shop of one seed (numpy's generator is fine here: the catalogue is built in one go)."""
    rng = np.random.default_rng([seed, 0])
    shares = np.array([v for _, v in config.category_shares])
    sizes = items_per_category(shares, config.n_items)
    item_category = np.repeat(np.arange(len(sizes)), sizes)
    popularity = [np.arange(1, n + 1, dtype=np.float64) ** -config.zipf_exponent for n in sizes]

    medians = dict(config.category_price_medians)
    log_median = np.log([medians[name] for name in config.category_names])[item_category]
    noise = config.price_log_sd * rng.standard_normal(config.n_items)
    price = np.maximum(np.round(np.exp(log_median + noise), 2), 0.01)
    numbers = rng.permutation(config.n_items).astype(str)
    platforms = tilted_preferences(shares, config.n_platforms, config.platform_skew, rng)
    mixes = np.vstack([platforms, shares])
    pick = np.cumsum(1.0 / np.arange(1, config.n_successors + 1))
    streams = (Stream.SUCCESSOR_STAY, Stream.SUCCESSOR_CATEGORY, Stream.SUCCESSOR_ITEM)
    return Catalog(
        category_starts=np.concatenate([[0], np.cumsum(sizes)]),
        item_category=item_category,
        item_table=segment_table(popularity),
        item_price=price,
        item_labels=np.strings.add(ITEM_PREFIX, numbers).astype(object),
        mixes=mixes,
        mix_table=segment_table(list(mixes)),
        mix_stay=stay_probability(mixes, config.same_category_rate),
        successor_cumulative=pick / pick[-1],
        successor_keys=tuple(stream_key(seed, s) for s in streams),
    )
