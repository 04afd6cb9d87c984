"""The synthetic shop's catalogue: items, their categories, prices, popularity and successors.

Built once per seed, so every chunk of sessions walks the same shop. Items are numbered in
blocks by category, most popular first inside a block, which turns "an item of category c
drawn by popularity" into one ``searchsorted`` on a table of per-category cumulative weights.
Successor lists are never stored: successor j of item i is a counter-based draw keyed by
(i, j), the same every time it is asked for, so a ten-million-item shop costs no memory for them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from fedpath.synth.config import SynthConfig
from fedpath.synth.randomness import Stream, stream_key, uniforms

ITEM_PREFIX = "syn-item-"
_SINKHORN_ROUNDS = 200
_SELF_REDRAWS = 8
_GREEDY_ITEMS = 20_000  # head of the catalogue dealt out item by item (a few ms)
_GOLDEN_FRACTION = 0.6180339887498949  # low-discrepancy spread of the tail over categories


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

    def moves_away(
        self,
        rows: np.ndarray,
        current: np.ndarray,
        keys: tuple[int, int, int],
        index: np.ndarray,
        step: np.ndarray,
        stride: int,
    ) -> np.ndarray:
        """Items a shopper on ``current`` moves to by popularity, never ``current`` itself.

        The category is kept with the row's stay probability, else redrawn from the row's mix;
        the draws are counter-based on ``keys`` (stay, category, item) at ``(index, step)``. An
        item draw that lands on the current item (a repeat is a move of its own, with its own
        rate) is redrawn in the same category at ``step + stride``, ``step + 2 * stride``, ...;
        a one-item category cannot be left that way and stays a repeat after a few tries.
        """
        key_stay, key_category, key_item = keys
        stay = uniforms(key_stay, index, step) < self.mix_stay[rows]
        redrawn = self.draw_categories(rows, uniforms(key_category, index, step))
        category = np.where(stay, self.item_category[current], redrawn)
        out = current.copy()
        pending = np.arange(len(current))
        for attempt in range(_SELF_REDRAWS):
            u_item = uniforms(key_item, index[pending], step[pending] + attempt * stride)
            out[pending] = self.draw_items(category[pending], u_item)
            pending = pending[out[pending] == current[pending]]
            if len(pending) == 0:
                break
        return out

    def successors(self, items: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Successor number ``slots`` of each item: a fixed move away from it (shop mix).

        Fixed lists are what gives first-order models their signal: a shopper leaving item i
        for a successor goes to one of the same few items every time.
        """
        shop = np.full(len(items), self.shop_row)
        stride = len(self.successor_cumulative)
        return self.moves_away(shop, items, self.successor_keys, items, slots, stride)


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


def assign_categories(weights: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """A category per item (weights sorted high to low) so each category's weight ≈ its share.

    Drawing a category by its share and then an item by weight inside it is then the same as
    drawing an item from the catalogue-wide Zipf, so the configured exponent is the slope of the
    whole log's popularity curve, not of fourteen curves merged. The heavy head is dealt out
    greedily (to the category furthest below its share), the light tail interleaved in
    proportion to what each category still lacks; every category gets at least one item.
    """
    n = len(weights)
    targets = shares * weights.sum()
    assigned = np.zeros(len(shares))
    categories = np.empty(n, dtype=np.int64)
    n_head = min(n, _GREEDY_ITEMS)
    heap = [(-t, c) for c, t in enumerate(targets)]
    heapq.heapify(heap)
    for rank in range(n_head):
        _, c = heapq.heappop(heap)
        categories[rank] = c
        assigned[c] += weights[rank]
        heapq.heappush(heap, (assigned[c] - targets[c], c))
    lacking = np.clip(targets - assigned, 0.0, None)
    if n > n_head and lacking.sum() > 0:
        cumulative = np.cumsum(lacking) / lacking.sum()
        spread = np.modf(np.arange(n - n_head) * _GOLDEN_FRACTION + 0.5)[0]
        tail = np.searchsorted(cumulative, spread, side="right")
        categories[n_head:] = np.minimum(tail, len(shares) - 1)
    elif n > n_head:
        categories[n_head:] = np.arange(n - n_head) % len(shares)
    for empty in np.flatnonzero(np.bincount(categories, minlength=len(shares)) == 0):
        crowded = np.argmax(np.bincount(categories, minlength=len(shares)))
        categories[np.flatnonzero(categories == crowded)[-1]] = empty  # its least popular item
    return categories


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
    weights = np.arange(1, config.n_items + 1, dtype=np.float64) ** -config.zipf_exponent
    by_rank = assign_categories(weights, np.array([v for _, v in config.category_shares]))
    order = np.argsort(by_rank, kind="stable")  # category blocks, most popular first in each
    item_category, weights = by_rank[order], weights[order]
    sizes = np.bincount(item_category, minlength=config.n_categories)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    popularity = [weights[starts[c] : starts[c + 1]] for c in range(config.n_categories)]
    shares = np.array([w.sum() for w in popularity]) / weights.sum()  # the assignment's shares

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
        category_starts=starts,
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
