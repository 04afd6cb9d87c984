"""Shopping paths walked through the synthetic catalogue, vectorised over sessions, in chunks.

One loop step advances every still-open session of a chunk by one event, so the Python loop
runs ``max_session_length`` times per chunk, never once per event or per session. Every draw
is counter-based (``fedpath.synth.randomness``): a chunk's sessions do not depend on where the
chunk starts, so chunked and one-shot generation give the same log.

A step after a view is a cart (cart_rate) or a purchase (purchase_after_view_rate) of the same
item; after a cart, a purchase (purchase_after_cart_rate); otherwise a view, which repeats the
item (repeat_rate), follows one of its successors (successor_rate), or is a fresh draw by
popularity that keeps the category at the configured rate.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from fedpath.schema import EVENT_DTYPES, Action, conform
from fedpath.synth.catalog import Catalog, build_catalog
from fedpath.synth.config import SynthConfig
from fedpath.synth.randomness import Stream, normals, stream_key, uniforms

SESSION_PREFIX = "syn-session-"
PLATFORM_PREFIX = "syn-platform-"
DEFAULT_CHUNK_SESSIONS = 50_000
_DAY_MS = 86_400_000


def length_cumulative(config: SynthConfig) -> np.ndarray:
    """P(length <= 1..max): 1 + NegBin(mean - 1, shape), cut at max_session_length."""
    excess_mean = config.session_length_mean - 1.0
    k = np.arange(config.max_session_length, dtype=np.float64)
    if excess_mean == 0.0:
        pmf = (k == 0).astype(np.float64)
    else:
        r = config.session_length_dispersion
        p = r / (r + excess_mean)
        ratios = np.concatenate([[p**r], (k[1:] - 1.0 + r) / k[1:] * (1.0 - p)])
        pmf = np.cumprod(ratios)
    return np.cumsum(pmf) / pmf.sum()


class _Walker:
    """The state one generation shares across chunks: config, catalogue, stream keys."""

    def __init__(self, config: SynthConfig, seed: int) -> None:
        self.config = config
        self.catalog: Catalog = build_catalog(config, seed=seed)
        self.keys = {stream: stream_key(seed, stream) for stream in Stream}
        self.move_keys = tuple(self.keys[s] for s in (Stream.STAY, Stream.CATEGORY, Stream.ITEM))
        self.length_cdf = length_cumulative(config)
        self.channel_cdf = np.cumsum([v for _, v in config.channel_shares])
        self.channel_names = np.array([k for k, _ in config.channel_shares], dtype=object)
        self.category_names = np.array(config.category_names, dtype=object)
        numbers = np.arange(1, config.n_platforms + 1).astype(str)
        self.platform_names = np.strings.add(PLATFORM_PREFIX, numbers).astype(object)
        self.id_width = len(str(config.n_sessions - 1))
        self.span_ms = config.duration_days * _DAY_MS

    def draw(self, stream: Stream, sessions: np.ndarray, step: np.ndarray | int = 0) -> np.ndarray:
        return uniforms(self.keys[stream], sessions, step)

    def chunk(self, first: int, stop: int) -> pd.DataFrame:
        """The events of sessions ``first..stop-1``."""
        config, catalog = self.config, self.catalog
        sessions = np.arange(first, stop, dtype=np.uint64)
        lengths = 1 + np.searchsorted(self.length_cdf, self.draw(Stream.LENGTH, sessions), "right")
        lengths = np.minimum(lengths, config.max_session_length)
        platform = (self.draw(Stream.PLATFORM, sessions) * config.n_platforms).astype(np.int64)
        channel = np.searchsorted(self.channel_cdf, self.draw(Stream.CHANNEL, sessions), "right")
        channel = np.minimum(channel, len(self.channel_cdf) - 1)
        offsets = np.cumsum(lengths) - lengths
        items, actions = self._walk(sessions, lengths, offsets, platform)

        timestamps = self._timestamps(sessions, lengths, offsets)
        ids = np.strings.zfill(sessions.astype(str), self.id_width)
        session_ids = np.strings.add(SESSION_PREFIX, ids).astype(object)
        columns = {
            "session_id": np.repeat(session_ids, lengths),
            "timestamp": timestamps,
            "item_id": catalog.item_labels[items],
            "category": self.category_names[catalog.item_category[items]],
            "action": actions,
            "channel": np.repeat(self.channel_names[channel], lengths),
            "price": catalog.item_price[items],
            "source": np.repeat(self.platform_names[platform], lengths),
        }
        # Explicit dtypes: left to infer, pandas would turn the id columns into arrow strings
        # only for conform() to turn them back, which costs more than the whole walk.
        typed = {name: pd.Series(v, dtype=EVENT_DTYPES[name]) for name, v in columns.items()}
        return conform(pd.DataFrame(typed))

    def _timestamps(
        self, sessions: np.ndarray, lengths: np.ndarray, offsets: np.ndarray
    ) -> np.ndarray:
        """Milliseconds [events]: session starts spread evenly over the span, then log-normal gaps.

        Session s starts in the s-th of n_sessions equal slices of the span, so sessions come in
        start order and a session's start does not depend on the chunk it is generated in.
        """
        config = self.config
        position = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths)
        z = normals(self.keys[Stream.GAP], np.repeat(sessions, lengths), position)
        gap_ms = np.rint(1000.0 * np.exp(config.gap_log_mean + config.gap_log_sd * z))
        gap_ms = gap_ms.astype(np.int64)
        gap_ms[position == 0] = 0
        elapsed = np.cumsum(gap_ms)
        elapsed -= np.repeat(elapsed[offsets], lengths)
        slot = (sessions + self.draw(Stream.START, sessions)) * self.span_ms / config.n_sessions
        return config.start_ms + np.repeat(np.floor(slot).astype(np.int64), lengths) + elapsed

    def _walk(
        self, sessions: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, platform: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Items [events] and actions [events]: each loop step moves every open session on."""
        config, catalog = self.config, self.catalog
        items = np.empty(int(lengths.sum()), dtype=np.int64)
        actions = np.zeros(len(items), dtype=np.int8)
        by_length = np.argsort(-lengths, kind="stable")
        longest_first = lengths[by_length]
        open_at = np.searchsorted(-longest_first, -np.arange(int(lengths.max())), side="left")
        leave = config.repeat_rate
        follow = leave + (1.0 - leave) * config.successor_rate
        for step, n_open in enumerate(open_at):
            who = by_length[:n_open]
            at = offsets[who] + step
            ids = sessions[who]
            if step == 0:
                categories = catalog.draw_categories(
                    platform[who], self.draw(Stream.CATEGORY, ids, 0)
                )
                items[at] = catalog.draw_items(categories, self.draw(Stream.ITEM, ids, 0))
                continue
            before, did = items[at - 1], actions[at - 1]
            u = self.draw(Stream.ACTION, ids, step)
            cart = (did == Action.VIEW) & (u < config.cart_rate)
            buy = (
                (did == Action.VIEW)
                & ~cart
                & (u < config.cart_rate + config.purchase_after_view_rate)
            ) | ((did == Action.CART) & (u < config.purchase_after_cart_rate))
            actions[at] = np.where(cart, Action.CART, np.where(buy, Action.PURCHASE, Action.VIEW))
            view = ~(cart | buy)
            move = self.draw(Stream.MOVE, ids, step)
            follows = np.flatnonzero(view & (move >= leave) & (move < follow))
            fresh = np.flatnonzero(view & (move >= follow))
            after = before.copy()  # a repeat unless a move below says otherwise
            pick = np.searchsorted(
                catalog.successor_cumulative, self.draw(Stream.PICK, ids[follows], step), "right"
            )
            slots = np.minimum(pick, config.n_successors - 1)
            after[follows] = catalog.successors(before[follows], slots)
            after[fresh] = catalog.moves_away(
                platform[who][fresh],
                before[fresh],
                self.move_keys,
                ids[fresh],
                np.full(len(fresh), step, dtype=np.uint64),
                config.max_session_length,
            )
            items[at] = after
        return items, actions


def iter_chunks(
    config: SynthConfig, *, seed: int, chunk_sessions: int = DEFAULT_CHUNK_SESSIONS
) -> Iterator[pd.DataFrame]:
    """The log in canonical event tables of ``chunk_sessions`` sessions each, in session order."""
    if chunk_sessions < 1:
        raise ValueError(f"chunk_sessions must be a positive integer, got {chunk_sessions}")
    walker = _Walker(config, seed)
    for first in range(0, config.n_sessions, chunk_sessions):
        yield walker.chunk(first, min(first + chunk_sessions, config.n_sessions))


def generate(
    config: SynthConfig, *, seed: int, chunk_sessions: int = DEFAULT_CHUNK_SESSIONS
) -> pd.DataFrame:
    """The whole synthetic log as one canonical events table; the same for any chunk size."""
    return pd.concat(
        list(iter_chunks(config, seed=seed, chunk_sessions=chunk_sessions)), ignore_index=True
    )
