"""One place that turns ``conf/strategy/<name>.yaml`` into a configured Flower strategy.

Every strategy is Flower's own legacy one (``flwr.server.strategy``), configured, not rewritten:
the SecAgg+ workflow of Flower 1.42 drives only legacy strategies (see docs/federation.md).
Under SecAgg+ the server sees the weighted MEAN of the sampled partners' updates and nothing
else, so every strategy that reads that mean composes with it (FedAvg, FedProx, FedAdam,
FedYogi, FedAvgM, and the count sum), while robust rules that must look at each update
separately (trimmed mean, median, Krum, Bulyan) are refused there rather than silently
degenerating to the mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.common import MetricsAggregationFn, Scalar, ndarrays_to_parameters
from flwr.server.strategy import (
    Bulyan,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    Strategy,
)

from fedpath.errors import ConfigError
from fedpath.privacy.dp.config import PrivacySettings
from fedpath.privacy.dp.partner import wrap_strategy
from fedpath.strategies.secure_sum import NonNegativeSum, SecureSum

STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedavgm": FedAvgM,
    "fedtrimmedavg": FedTrimmedAvg,
    "fedmedian": FedMedian,
    "krum": Krum,
    "bulyan": Bulyan,
    "sum": SecureSum,
}
# Need every partner's update in the clear; SecAgg+ only ever reveals their mean.
ROBUST = frozenset({"fedtrimmedavg", "fedmedian", "krum", "bulyan"})
MIN_SAMPLED = 2  # SecAgg+ refuses a round with fewer partners, and a mean of one is no mean


def sampled_partners(n_partners: int, fraction: float) -> int:
    """How many partners Flower's legacy strategies sample for ``fraction`` (their rule)."""
    return max(int(n_partners * fraction), MIN_SAMPLED)


@dataclass(frozen=True)
class StrategyWiring:
    """What every strategy gets from the federation, whatever its algorithm."""

    n_partners: int
    initial_weights: list[np.ndarray]
    fraction_fit: float = 1.0
    fraction_evaluate: float = 1.0
    on_fit_config_fn: Callable[[int], dict[str, Scalar]] | None = None
    on_evaluate_config_fn: Callable[[int], dict[str, Scalar]] | None = None
    fit_metrics_aggregation_fn: MetricsAggregationFn | None = None
    evaluate_metrics_aggregation_fn: MetricsAggregationFn | None = None

    def sampled(self, fraction: float) -> int:
        return sampled_partners(self.n_partners, fraction)

    def flower_args(self) -> dict[str, Any]:
        return {
            "fraction_fit": self.fraction_fit,
            "fraction_evaluate": self.fraction_evaluate,
            "min_fit_clients": MIN_SAMPLED,
            "min_evaluate_clients": MIN_SAMPLED,
            # Wait for every partner to register before round 1 samples among them.
            "min_available_clients": self.n_partners,
            "initial_parameters": ndarrays_to_parameters(self.initial_weights),
            "on_fit_config_fn": self.on_fit_config_fn,
            "on_evaluate_config_fn": self.on_evaluate_config_fn,
            "fit_metrics_aggregation_fn": self.fit_metrics_aggregation_fn,
            "evaluate_metrics_aggregation_fn": self.evaluate_metrics_aggregation_fn,
        }


def build_strategy(
    name: str,
    params: Mapping[str, Any],
    *,
    secagg: bool,
    wiring: StrategyWiring,
    privacy: PrivacySettings | None = None,
) -> Strategy:
    """The Flower strategy ``name`` with its algorithm ``params`` and the federation's wiring.

    With ``privacy``, noisy count sums are clipped at 0 and partner-level DP wraps the strategy
    in Flower's DP wrapper (``fedpath.privacy.dp.partner``).
    """
    if name not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {sorted(STRATEGIES)}, got {name!r}")
    if secagg and name in ROBUST:
        raise ConfigError(
            f"strategy {name!r} must run with secagg=off: it inspects each partner's update, "
            "and under SecAgg+ the server only holds their aggregate"
        )
    if name == "bulyan":
        _check_bulyan(params, wiring.sampled(wiring.fraction_fit))
    session_counts = name == "sum" and privacy is not None and privacy.session is not None
    try:
        strategy = (NonNegativeSum if session_counts else STRATEGIES[name])(
            **wiring.flower_args(), **params
        )
    except TypeError as error:
        raise ConfigError(
            f"strategy {name!r} parameters must match Flower's, got {error}"
        ) from None
    if privacy is None or privacy.partner is None:
        return strategy
    sampled = wiring.sampled(wiring.fraction_fit)
    return wrap_strategy(strategy, privacy.partner, secagg=secagg, sampled=sampled)


def _check_bulyan(params: Mapping[str, Any], sampled: int) -> None:
    """Bulyan needs n >= 4f + 3 updates; say so now rather than crash the server mid-round."""
    malicious = int(params.get("num_malicious_clients", 0))
    if sampled < 4 * malicious + 3:
        raise ConfigError(
            f"bulyan num_malicious_clients must satisfy 4f + 3 <= partners sampled per round "
            f"({sampled}), got f = {malicious}"
        )
