"""The statistics a synthetic log must share with a real one, measured the same way on both.

The generator's defaults are these figures measured on the real samples, and the tests measure
a generated log with the same function: one definition, so "calibrated" means the same number
on both sides. (Named ``measure`` rather than ``calibration`` so it is not confused with the
probability-calibration metrics in ``fedpath.metrics.calibration``.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from fedpath.schema import Action

UNCODED = "uncoded"  # the category of events whose log gives none (31% of REES46 events)
HIT_K = 20  # cut-off of the next-item hit rates, as in the evaluation protocol's Recall@20
TRAIN_FRACTION = 0.8  # share of sessions (by start) that train the count predictors


@dataclass(frozen=True)
class LogStatistics:
    """What a log looks like to a next-step model; NaN where the log cannot tell."""

    n_events: int
    n_sessions: int
    n_items: int
    session_length_mean: float
    session_length_dispersion: float  # NegBin shape of (length - 1), fitted by moments
    single_event_share: float
    zipf_exponent: float  # minus the log-log slope of item frequency against rank
    repeat_rate: float  # view -> view pairs on the same item
    same_category_rate: float  # pairs of different items in the same top-level category
    markov_hit: float  # next item in the top HIT_K successors of the current one
    popularity_hit: float  # next item in the top HIT_K items overall
    cart_rate: float  # P(cart | the previous event was a view)
    purchase_after_view_rate: float
    purchase_after_cart_rate: float
    conversion_rate: float  # share of sessions with a purchase
    gap_log_mean: float  # mean of log(seconds) of positive gaps inside sessions
    gap_log_sd: float
    price_log_sd: float  # pooled within-category sd of log price
    category_shares: dict[str, float]  # top-level category -> share of events
    category_price_medians: dict[str, float]  # top-level category -> geometric mean price

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (NaN becomes None)."""
        return {k: _json_number(v) for k, v in asdict(self).items()}


def _json_number(value: object) -> object:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _ratio(numerator: int | float, denominator: int | float) -> float:
    return float(numerator) / denominator if denominator else float("nan")


def top_level(categories: pd.Series) -> pd.Series:
    """The first segment of a dotted taxonomy (REES46 ``electronics.smartphone``), or UNCODED."""
    return categories.fillna("").astype(str).str.split(".", n=1).str[0].replace("", UNCODED)


def negbin_moments(lengths: np.ndarray) -> tuple[float, float]:
    """Mean of the lengths and the NegBin shape r of ``lengths - 1`` (var = m + m²/r).

    Returns r = inf when the lengths are not over-dispersed (a Poisson fits as well).
    """
    excess = lengths.astype(np.float64) - 1.0
    mean, var = excess.mean(), excess.var()
    shape = mean**2 / (var - mean) if var > mean else float("inf")
    return float(lengths.mean()), float(shape)


def zipf_exponent(item_counts: np.ndarray) -> float:
    """Minus the least-squares slope of log(count) on log(rank), over every item seen."""
    counts = np.sort(item_counts)[::-1].astype(np.float64)
    if len(counts) < 2:
        return float("nan")
    ranks = np.arange(1, len(counts) + 1, dtype=np.float64)
    return float(-np.polyfit(np.log(ranks), np.log(counts), 1)[0])


def _expected_hits(table: pd.DataFrame, by: list[str], asked: pd.DataFrame) -> float:
    """Mean chance that an asked item is in the top HIT_K of its group, ties broken at random.

    ``table`` has columns ``by + ["item", "count"]``; ``asked`` has ``by + ["item"]``. An asked
    item absent from its group's table scores 0.
    """
    if asked.empty:
        return float("nan")
    table = table.copy()
    grouped = table.groupby(by, sort=False)["count"] if by else table["count"]
    table["above"] = grouped.rank(method="min", ascending=False) - 1
    table["tied"] = table.groupby([*by, "count"], sort=False)["count"].transform("size")
    merged = asked.merge(table, on=[*by, "item"], how="left")
    hit = ((HIT_K - merged["above"]) / merged["tied"]).clip(0.0, 1.0).fillna(0.0)
    return float(hit.mean())


def _next_item_hits(
    sessions: np.ndarray, items: np.ndarray, starts: pd.Series
) -> tuple[float, float]:
    """Hit@HIT_K of a first-order count predictor and of popularity, on later sessions.

    Consecutive duplicates are collapsed first and only pairs of items seen in training are
    asked (as the evaluation protocol does); the first TRAIN_FRACTION of sessions by start
    count pairs and items, the later ones ask.
    """
    keep = np.ones(len(items), dtype=bool)
    keep[1:] = (sessions[1:] != sessions[:-1]) | (items[1:] != items[:-1])
    sessions, items = sessions[keep], items[keep]
    order = starts.sort_values(kind="stable").index
    n_train = round(TRAIN_FRACTION * len(order))
    in_train = pd.Series(np.arange(len(order)) < n_train, index=order).reindex(sessions).to_numpy()
    pair = sessions[1:] == sessions[:-1]
    pairs = pd.DataFrame({"last": items[:-1][pair], "item": items[1:][pair]})
    pair_train = in_train[1:][pair]
    train_pairs = pairs[pair_train].value_counts().rename("count").reset_index()
    train_items = pd.Series(items[in_train]).value_counts().rename("count")
    train_items = train_items.rename_axis("item").reset_index()
    known = pd.Index(train_items["item"])
    asked = pairs[~pair_train]
    asked = asked[known.get_indexer(asked["last"]) >= 0]
    asked = asked[known.get_indexer(asked["item"]) >= 0]
    markov = _expected_hits(train_pairs, ["last"], asked)
    popularity = _expected_hits(train_items, [], asked[["item"]])
    return markov, popularity


def _action_rates(sessions: np.ndarray, actions: np.ndarray) -> tuple[float, float, float]:
    pair = sessions[1:] == sessions[:-1]
    before, after = actions[:-1][pair], actions[1:][pair]
    after_view = after[before == Action.VIEW]
    after_cart = after[before == Action.CART]
    return (
        _ratio((after_view == Action.CART).sum(), len(after_view)),
        _ratio((after_view == Action.PURCHASE).sum(), len(after_view)),
        _ratio((after_cart == Action.PURCHASE).sum(), len(after_cart)),
    )


def _price_statistics(frame: pd.DataFrame) -> tuple[float, dict[str, float]]:
    priced = frame[frame["price"] > 0]
    if priced.empty:
        return float("nan"), {}
    log_price = np.log(priced["price"])
    by_category = log_price.groupby(priced["top"])
    medians = {str(c): float(np.exp(m)) for c, m in by_category.mean().items()}
    pooled_sd = float(np.sqrt((log_price - by_category.transform("mean")).pow(2).mean()))
    return pooled_sd, medians


def measure_log(events: pd.DataFrame) -> LogStatistics:
    """Measure a canonical events table (``fedpath.schema``), rows in any order.

    Rows are put in (session, time) order first, ties keeping their order in the table.
    """
    frame = events.sort_values(["session_id", "timestamp"], kind="stable").reset_index(drop=True)
    frame["top"] = top_level(frame["category"])
    sessions = frame["session_id"].to_numpy()
    items = frame["item_id"].to_numpy()
    actions = frame["action"].to_numpy()
    same_session = sessions[1:] == sessions[:-1]
    same_item = items[1:] == items[:-1]

    lengths = frame.groupby("session_id", sort=False).size().to_numpy()
    length_mean, dispersion = negbin_moments(lengths)
    views = (actions[1:] == Action.VIEW) & (actions[:-1] == Action.VIEW) & same_session
    moved = same_session & ~same_item
    tops = frame["top"].to_numpy()
    gaps = np.diff(frame["timestamp"].to_numpy())[same_session] / 1000.0
    log_gaps = np.log(gaps[gaps > 0])
    markov, popularity = _next_item_hits(
        sessions, items, frame.groupby("session_id", sort=False)["timestamp"].min()
    )
    nan = float("nan")
    # A log of views only (Diginetica) says nothing about carts, categories or prices: NaN, not 0.
    if (actions != Action.VIEW).any():
        cart, purchase_view, purchase_cart = _action_rates(sessions, actions)
        purchased = frame.loc[frame["action"] == Action.PURCHASE, "session_id"].nunique()
        conversion = _ratio(purchased, len(lengths))
    else:
        cart = purchase_view = purchase_cart = conversion = nan
    has_categories = bool(frame["category"].notna().any())
    same_category = _ratio((moved & (tops[1:] == tops[:-1])).sum(), moved.sum())
    price_sd, price_medians = _price_statistics(frame)
    shares = frame["top"].value_counts(normalize=True) if has_categories else pd.Series()
    return LogStatistics(
        n_events=len(frame),
        n_sessions=len(lengths),
        n_items=int(frame["item_id"].nunique()),
        session_length_mean=length_mean,
        session_length_dispersion=dispersion,
        single_event_share=float((lengths == 1).mean()),
        zipf_exponent=zipf_exponent(frame["item_id"].value_counts().to_numpy()),
        repeat_rate=_ratio((views & same_item).sum(), views.sum()),
        same_category_rate=same_category if has_categories else nan,
        markov_hit=markov,
        popularity_hit=popularity,
        cart_rate=cart,
        purchase_after_view_rate=purchase_view,
        purchase_after_cart_rate=purchase_cart,
        conversion_rate=conversion,
        gap_log_mean=float(log_gaps.mean()) if len(log_gaps) else nan,
        gap_log_sd=float(log_gaps.std()) if len(log_gaps) else nan,
        price_log_sd=price_sd,
        category_shares={str(c): float(s) for c, s in shares.items()},
        category_price_medians=price_medians,
    )
