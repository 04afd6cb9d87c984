"""What the synthetic shop looks like, with defaults measured on the real samples.

Every default below that describes behaviour is a figure measured on a real public sample in
``../shared/data`` by ``fedpath.synth.measure.measure_log``; ``benchmarks/synth_calibration.py``
recomputes each one from the logs and prints it beside the constant. Sizes (sessions, items,
dates) are choices, not measurements. Channels and source platforms exist in neither sample:
their defaults are ASSUMPTIONS, marked as such, and listed in every file's sidecar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from fedpath.errors import ConfigError

# --- Measured on the Diginetica sample (sample_train-item-views.csv, 12,391 views, 2,986
# sessions): its sessions are whole, whereas the REES46 head is cut at 02:28 and its sessions
# are right-censored. Events per session (all rows), and the NegBin shape r of (length - 1)
# fitted by moments (var = m + m²/r); the fit gives P(length 1) = 0.34 where the log has 0.31.
SESSION_LENGTH_MEAN = 4.1497
SESSION_LENGTH_DISPERSION = 0.5928

# --- Measured on the REES46 head sample (2019-Oct-head.csv, 5,019 events, 1,906 sessions),
# the one sample with carts, purchases, categories and prices; rows ordered by (session, time).
# Share of consecutive view -> view pairs of a session on the same product.
REPEAT_RATE = 0.3314
# Share of consecutive pairs of *different* products in the same top-level category_code
# (an empty code counts as the category "uncoded").
SAME_CATEGORY_RATE = 0.9292
# The funnel as P(next event | previous event) over consecutive pairs of a session: 39 carts and
# 41 purchases after 3,049 views; 12 purchases after 36 carts. Every cart and purchase in the
# sample is of the product viewed just before it, so the generator repeats that product.
CART_RATE = 0.01279
PURCHASE_AFTER_VIEW_RATE = 0.01345
PURCHASE_AFTER_CART_RATE = 0.3333
# Positive gaps between consecutive events of a session: mean and sd of log(seconds).
GAP_LOG_MEAN = 3.456
GAP_LOG_SD = 0.9650
# Event shares of the top-level category_code, largest first (they sum to 1).
CATEGORY_SHARES: dict[str, float] = {
    "electronics": 0.41164,
    "uncoded": 0.31381,
    "appliances": 0.09902,
    "computers": 0.06436,
    "apparel": 0.03009,
    "furniture": 0.02311,
    "auto": 0.02032,
    "construction": 0.01933,
    "kids": 0.007571,
    "sport": 0.004583,
    "accessories": 0.003786,
    "stationery": 0.001793,
    "medicine": 0.0003985,
    "country_yard": 0.0001992,
}
# Geometric mean price of the events of each top-level category, and the pooled sd of log price
# around its category's mean.
CATEGORY_PRICE_MEDIANS: dict[str, float] = {
    "electronics": 291.75,
    "uncoded": 83.60,
    "appliances": 104.20,
    "computers": 268.18,
    "apparel": 62.63,
    "furniture": 135.09,
    "auto": 108.31,
    "construction": 118.43,
    "kids": 110.57,
    "sport": 202.73,
    "accessories": 51.59,
    "stationery": 11.71,
    "medicine": 56.43,
    "country_yard": 228.52,
}
PRICE_LOG_SD = 1.1162

# --- Calibrated by simulation on the REES46 sample (not directly observable: a small log sees
# only part of its catalogue, so its rank-frequency curve and hit rates are flattened by
# sampling). fedpath.synth.calibrate finds the values whose synthetic log at the sample's size
# (on a catalogue of 6,936 items, 3x the 2,312 seen) comes closest to the sample's distinct
# items (twin 2,346), rank-frequency slope (0.639; twin 0.623) and popularity hit@20 (0.235;
# twin 0.265), and matches its first-order hit@20 (0.393; twin 0.392); the benchmark reruns
# the search. (On the Diginetica sample the same search gives 0.5 and 0.473.)
ZIPF_EXPONENT = 0.65
SUCCESSOR_RATE = 0.902

# --- ASSUMPTIONS, not measurements: neither sample records a channel or a source platform.
CHANNEL_SHARES: dict[str, float] = {"app": 0.45, "pc": 0.30, "mini-program": 0.15, "social": 0.10}
N_PLATFORMS = 4  # partners; each gets its own tilt of the category shares (non-IID)
PLATFORM_SKEW = 1.0  # sd of the log-normal tilt of each platform's category preferences
N_SUCCESSORS = 8  # length of each item's successor list; pick weights fall as 1/rank
ASSUMED = ("channel_shares", "n_platforms", "platform_skew", "n_successors", "duration_days")

# The samples the defaults come from (../shared/data/*/README.md), recorded in every sidecar.
CALIBRATED_ON: list[dict[str, str]] = [
    {
        "sample": "diginetica-sample/sample_train-item-views.csv",
        "origin": "CIKM Cup 2016 (DIGINETICA) train-item-views, sample shipped with SR-GNN",
        "used_for": "session length",
    },
    {
        "sample": "rees46-multicategory-sample/2019-Oct-head.csv",
        "origin": "REES46 / Open CDP multi-category store, first 5,019 rows of 2019-Oct",
        "used_for": "popularity, transitions, funnel, categories, prices, gaps",
    },
]


def _pairs(value: object, name: str) -> tuple[tuple[str, float], ...]:
    """A mapping (as Hydra gives it) or (name, weight) pairs, as a tuple of pairs in order."""
    try:
        items = value.items() if isinstance(value, Mapping) else value
        pairs = tuple((str(k), float(v)) for k, v in items)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a mapping of name to weight, got {value!r}") from None
    names = [k for k, _ in pairs]
    if not pairs or len(set(names)) != len(names) or "" in names:
        raise ConfigError(f"{name} must have at least one entry and unique names, got {value!r}")
    if any(not math.isfinite(v) or v < 0 for _, v in pairs) or sum(v for _, v in pairs) <= 0:
        raise ConfigError(
            f"{name} must have finite non-negative weights with a positive sum, got {value!r}"
        )
    return pairs


def _number(value: object, name: str) -> float:
    """A float field's value as a float (YAML may give an int); a ConfigError if it is none."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


def _normalised(pairs: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """Weights scaled to sum 1; left alone when they already do, so that a config read back
    from a sidecar equals the one that wrote it."""
    total = sum(v for _, v in pairs)
    if math.isclose(total, 1.0, rel_tol=0.0, abs_tol=1e-9):
        return pairs
    return tuple((k, v / total) for k, v in pairs)


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic shop and its shoppers; weights given as mappings are normalised to sum 1."""

    n_sessions: int = 5000
    n_items: int = 5000
    session_length_mean: float = SESSION_LENGTH_MEAN
    session_length_dispersion: float = SESSION_LENGTH_DISPERSION
    max_session_length: int = 200
    zipf_exponent: float = ZIPF_EXPONENT
    repeat_rate: float = REPEAT_RATE
    successor_rate: float = SUCCESSOR_RATE
    n_successors: int = N_SUCCESSORS
    same_category_rate: float = SAME_CATEGORY_RATE
    cart_rate: float = CART_RATE
    purchase_after_view_rate: float = PURCHASE_AFTER_VIEW_RATE
    purchase_after_cart_rate: float = PURCHASE_AFTER_CART_RATE
    gap_log_mean: float = GAP_LOG_MEAN
    gap_log_sd: float = GAP_LOG_SD
    price_log_sd: float = PRICE_LOG_SD
    category_shares: tuple[tuple[str, float], ...] = tuple(CATEGORY_SHARES.items())
    category_price_medians: tuple[tuple[str, float], ...] = tuple(CATEGORY_PRICE_MEDIANS.items())
    channel_shares: tuple[tuple[str, float], ...] = tuple(CHANNEL_SHARES.items())
    n_platforms: int = N_PLATFORMS
    platform_skew: float = PLATFORM_SKEW
    start: str = "2024-01-01T00:00:00+00:00"  # ISO 8601; a naive time is read as UTC
    duration_days: float = 7.0  # sessions start uniformly over this span (an assumption)

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type == "float":
                object.__setattr__(self, f.name, _number(getattr(self, f.name), f.name))
        shares = _normalised(_pairs(self.category_shares, "category_shares"))
        prices = _pairs(self.category_price_medians, "category_price_medians")
        object.__setattr__(self, "category_shares", shares)
        object.__setattr__(self, "category_price_medians", prices)
        object.__setattr__(
            self, "channel_shares", _normalised(_pairs(self.channel_shares, "channel_shares"))
        )
        self._check_counts()
        self._check_rates()
        if {k for k, _ in prices} != set(self.category_names) or any(v <= 0 for _, v in prices):
            raise ConfigError(
                "category_price_medians must give a positive price for each category of "
                f"category_shares {sorted(self.category_names)}, got {dict(prices)}"
            )
        self.start_ms  # noqa: B018 - parses start, raising ConfigError if it cannot

    def _check_counts(self) -> None:
        for name in ("n_sessions", "n_items", "max_session_length", "n_successors", "n_platforms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.n_items < self.n_categories:
            raise ConfigError(
                f"n_items must be at least the number of categories ({self.n_categories}), "
                f"got {self.n_items}"
            )

    def _check_rates(self) -> None:
        probabilities = (
            "repeat_rate",
            "successor_rate",
            "same_category_rate",
            "cart_rate",
            "purchase_after_view_rate",
            "purchase_after_cart_rate",
        )
        for name in probabilities:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.cart_rate + self.purchase_after_view_rate > 1.0:
            raise ConfigError(
                "cart_rate + purchase_after_view_rate must be at most 1, got "
                f"{self.cart_rate + self.purchase_after_view_rate}"
            )
        if not 1.0 <= self.session_length_mean <= self.max_session_length:
            raise ConfigError(
                f"session_length_mean must be in [1, max_session_length={self.max_session_length}]"
                f", got {self.session_length_mean!r}"
            )
        positive = ("session_length_dispersion", "duration_days")
        non_negative = ("zipf_exponent", "gap_log_sd", "price_log_sd", "platform_skew")
        for name in (*positive, *non_negative):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name in positive and value == 0):
                rule = "positive" if name in positive else "non-negative"
                raise ConfigError(f"{name} must be a finite {rule} number, got {value!r}")
        if not math.isfinite(self.gap_log_mean):
            raise ConfigError(f"gap_log_mean must be finite, got {self.gap_log_mean!r}")

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.category_shares)

    @property
    def n_categories(self) -> int:
        return len(self.category_shares)

    @property
    def start_ms(self) -> int:
        """``start`` in milliseconds since the Unix epoch."""
        try:
            moment = datetime.fromisoformat(str(self.start))
        except ValueError:
            raise ConfigError(f"start must be an ISO 8601 time, got {self.start!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1000)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, with the weight pairs as mappings (the shape conf/synth.yaml uses)."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, tuple) else value
        return out
