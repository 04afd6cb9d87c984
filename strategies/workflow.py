"""The round loop: Flower's legacy ``DefaultWorkflow``, with SecAgg+ as its fit step by default.

``secagg=off`` swaps ``SecAggPlusWorkflow`` for Flower's plain fit workflow inside the same
``DefaultWorkflow``; strategy, partners and records are untouched, so the two runs differ in
how updates travel and nothing else.
"""

from __future__ import annotations

import math

from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from fedpath.errors import ConfigError
from fedpath.federation.config import LOG_SHARES, SecAggSettings
from fedpath.strategies import secure_sum


def shares_of(num_shares: int | float | str, sampled: int) -> int | float:
    """Flower's ``num_shares`` for ``sampled`` partners a round.

    ``"log"`` becomes the fraction that Flower rounds back to ``2⌈log₂ m⌉ + 1`` of the ``m``
    sampled partners (odd, as Flower wants): a fraction rather than a count, so that a round
    sampling fewer partners than expected (a deployed partner offline) still gets a valid
    neighbourhood. Shares cost O(m · shares) key agreements and messages a round: for 100
    partners on this 2-core machine half shares took 76 s a round and all shares about 5 minutes,
    against 5 s without SecAgg+ (benchmarks/secagg_overhead.py).
    """
    if isinstance(num_shares, str) and num_shares != LOG_SHARES:
        raise ConfigError(
            f"secagg.num_shares must be {LOG_SHARES!r}, an int or a float, got {num_shares!r}"
        )
    if num_shares != LOG_SHARES:
        return num_shares
    neighbours = log_shares(sampled)
    return 1.0 if neighbours == sampled else neighbours / sampled


def log_shares(sampled: int) -> int:
    """SecAgg+'s neighbourhood for ``sampled`` partners: ``2⌈log₂ m⌉`` neighbours plus the
    partner itself (odd), or all ``m`` when that is fewer."""
    return min(2 * math.ceil(math.log2(max(sampled, 2))) + 1, sampled)


def build_workflow(
    settings: SecAggSettings,
    *,
    max_weight: float,
    sampled: int,
    count_scale: int | None = None,
) -> DefaultWorkflow:
    """The workflow of a run.

    ``max_weight`` bounds a partner's reported weight (its train cases) when ``settings`` leaves
    it unset; ``sampled`` is the number of partners a round samples (``"log"`` shares depend on
    it); ``count_scale`` (the secure-sum bound S) switches to the exact count quantization.
    """
    if not settings.enabled:
        return DefaultWorkflow()
    if count_scale is None:
        quantization = {
            "clipping_range": settings.clipping_range,
            "quantization_range": settings.quantization_range,
            "max_weight": settings.max_weight or max_weight,
        }
    else:
        quantization = {
            "clipping_range": secure_sum.CLIPPING_RANGE,
            "quantization_range": secure_sum.quantization_range(count_scale),
            "max_weight": secure_sum.MAX_WEIGHT,
        }
    try:
        fit = SecAggPlusWorkflow(
            num_shares=shares_of(settings.num_shares, sampled),
            reconstruction_threshold=settings.reconstruction_threshold,
            modulus_range=settings.modulus_range,
            timeout=settings.timeout,
            **quantization,
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"secagg settings must satisfy Flower's SecAgg+ rules, got: {error}"
        ) from None
    return DefaultWorkflow(fit_workflow=fit)
