"""The round loop: Flower's legacy ``DefaultWorkflow``, with SecAgg+ as its fit step by default.

``secagg=off`` swaps ``SecAggPlusWorkflow`` for Flower's plain fit workflow inside the same
``DefaultWorkflow``; strategy, partners and records are untouched, so the two runs differ in
how updates travel and nothing else.
"""

from __future__ import annotations

from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from fedpath.errors import ConfigError
from fedpath.server.config import SecAggSettings
from fedpath.strategies import secure_sum


def build_workflow(
    settings: SecAggSettings, *, max_weight: float, count_scale: int | None = None
) -> DefaultWorkflow:
    """The workflow of a run.

    ``max_weight`` bounds a partner's reported weight (its train cases) when ``settings`` leaves
    it unset; ``count_scale`` (the secure-sum bound S) switches to the exact count quantization.
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
            num_shares=settings.num_shares,
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
