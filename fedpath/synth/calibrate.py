"""A generator configuration that reproduces a measured log: a synthetic twin of its statistics.

Most figures carry over as measured. Three cannot: a small log sees only part of its catalogue,
so its rank-frequency slope and hit rates are flattened by sampling and say nothing directly
about the shop's popularity law or how often shoppers follow an item's successors. Those are
found by simulation instead: the catalogue size and Zipf exponent whose synthetic log, at the
real log's size, shows the real distinct-item count, rank-frequency slope and popularity hit@20
(a grid, coarse then fine, on the sum of squared relative errors), and the successor rate that
gives the real first-order hit@20 (a bisection: more following, more hits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from fedpath.synth.config import SynthConfig
from fedpath.synth.generate import generate
from fedpath.synth.measure import LogStatistics, measure_log

CALIBRATION_SEEDS = (0, 1)  # common random numbers: every candidate sees the same draws
ZIPF_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
# catalogue size / distinct items seen
CATALOGUE_FACTORS = (1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
_FINE_ZIPF_STEP = 0.05
_BISECTION_STEPS = 7
_ROUNDS = 3
START_SUCCESSOR_RATE = 0.5
_FITTED = ("n_items", "zipf_exponent", "popularity_hit")


@dataclass(frozen=True)
class Calibration:
    """The fitted configuration and the statistics of its synthetic log (mean over seeds)."""

    config: SynthConfig
    simulated: dict[str, float]


def _simulate(config: SynthConfig) -> dict[str, float]:
    runs = [measure_log(generate(config, seed=s)) for s in CALIBRATION_SEEDS]
    keys = (*_FITTED, "markov_hit")
    return {k: float(np.mean([getattr(r, k) for r in runs])) for k in keys}


def _bisect(low: float, high: float, too_low: Callable[[float], bool]) -> float:
    """The boundary of a monotone predicate: ``too_low(x)`` is true below it, false above."""
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if too_low(middle) else (low, middle)
    return (low + high) / 2


def _known(value: float, default: float) -> float:
    """The measured value, or the default where the log cannot tell (NaN) or fits no NegBin."""
    return value if math.isfinite(value) else default


def measured_config(stats: LogStatistics, base: SynthConfig | None = None) -> SynthConfig:
    """``base`` with every figure the log measures directly; the rest of ``base`` is kept."""
    base = base or SynthConfig()
    changes: dict[str, object] = {
        "n_sessions": stats.n_sessions,
        "session_length_mean": stats.session_length_mean,
        "session_length_dispersion": _known(
            stats.session_length_dispersion, base.session_length_dispersion
        ),
        "repeat_rate": _known(stats.repeat_rate, base.repeat_rate),
        "same_category_rate": _known(stats.same_category_rate, base.same_category_rate),
        "cart_rate": _known(stats.cart_rate, base.cart_rate),
        "purchase_after_view_rate": _known(
            stats.purchase_after_view_rate, base.purchase_after_view_rate
        ),
        "purchase_after_cart_rate": _known(
            stats.purchase_after_cart_rate, base.purchase_after_cart_rate
        ),
        "gap_log_mean": _known(stats.gap_log_mean, base.gap_log_mean),
        "gap_log_sd": _known(stats.gap_log_sd, base.gap_log_sd),
        "price_log_sd": _known(stats.price_log_sd, base.price_log_sd),
    }
    if stats.category_shares and set(stats.category_price_medians) == set(stats.category_shares):
        changes["category_shares"] = stats.category_shares
        changes["category_price_medians"] = stats.category_price_medians
    return replace(base, **changes)


def _popularity_fit(
    config: SynthConfig, stats: LogStatistics, zipfs: tuple[float, ...], factors: tuple[float, ...]
) -> tuple[float, float, float]:
    """(loss, exponent, catalogue factor) of the best grid point."""
    target = {k: getattr(stats, k) for k in _FITTED}
    best = (math.inf, zipfs[0], factors[0])
    for zipf in zipfs:
        for factor in factors:
            n_items = max(round(factor * stats.n_items), config.n_categories)
            simulated = _simulate(replace(config, zipf_exponent=zipf, n_items=n_items))
            loss = sum((simulated[k] / target[k] - 1.0) ** 2 for k in _FITTED if target[k] > 0)
            best = min(best, (loss, zipf, factor))
    return best


def _successor_fit(config: SynthConfig, stats: LogStatistics) -> float:
    def too_few_hits(rate: float) -> bool:
        return _simulate(replace(config, successor_rate=rate))["markov_hit"] < stats.markov_hit

    return round(_bisect(0.0, 1.0, too_few_hits), 3)


def calibrate(
    stats: LogStatistics,
    base: SynthConfig | None = None,
    *,
    zipfs: tuple[float, ...] = ZIPF_GRID,
    factors: tuple[float, ...] = CATALOGUE_FACTORS,
) -> Calibration:
    """The configuration whose synthetic log, at this log's size, looks most like it.

    Popularity and successor rate interact (following successors shifts which items are
    seen), so the fits alternate from a fixed start until neither moves: the result depends on
    the log only, not on the defaults it starts from.
    """
    config = replace(measured_config(stats, base), successor_rate=START_SUCCESSOR_RATE)
    _, zipf, factor = _popularity_fit(config, stats, zipfs, factors)
    for _ in range(_ROUNDS):
        near = factors.index(factor)
        fine_zipfs = tuple(round(zipf + d, 3) for d in (-_FINE_ZIPF_STEP, 0.0, _FINE_ZIPF_STEP))
        fine_factors = factors[max(near - 1, 0) : near + 2]
        _, zipf, factor = _popularity_fit(config, stats, fine_zipfs, fine_factors)
        n_items = max(round(factor * stats.n_items), config.n_categories)
        fitted = replace(config, zipf_exponent=zipf, n_items=n_items)
        fitted = replace(fitted, successor_rate=_successor_fit(fitted, stats))
        if fitted == config:
            break
        config = fitted
    return Calibration(config=config, simulated=_simulate(config))
