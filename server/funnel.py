"""The federated shopping funnel: every partner's funnel counts, revealed only as their sum, with
the union's predicted vs actual conversion.

Funnel counts are additive, so the global funnel is one secure sum of the partners' count
vectors. It reuses the exact secure-sum encoding of the count models (``strategies/
secure_sum.py``) through the same SecAgg+ workflow, as one extra round after training
(``server/sum_round.py``). The round carries the trained model: each partner also sums, over its
test sessions, the conversions and the model's predicted conversion probability on arrival
(calibrated when the calibration round ran first), in fixed point. The server learns the union's
funnel and forecast and nothing about any partner's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from flwr.common import Context, Scalar
from flwr.server import Grid
from flwr.server.workflow import DefaultWorkflow

from fedpath.federation.keys import (
    COUNT_SCALE,
    FUNNEL_CHANNELS,
    FUNNEL_FORECAST,
    FUNNEL_TASK,
    TASK,
    TEMPERATURES,
)
from fedpath.metrics.funnel import ConversionCheck, Funnel
from fedpath.server.calibration_round import CalibrationRound
from fedpath.server.sum_round import secure_sum_round
from fedpath.strategies.secure_sum import decode_fixed


@dataclass(frozen=True)
class FederatedFunnel:
    """The union's funnel, its test sessions' predicted vs actual conversion, and the partners
    whose counts are in them (all, unless one failed)."""

    funnel: Funnel
    partners: list[int]
    conversion: ConversionCheck
    calibrated: bool  # whether the predicted conversion is the calibrated probability


class FunnelRound:
    """A step run after training (``build_server_app``'s ``after``): one secure-sum round.

    With ``calibration`` (a step run before this one), partners calibrate their forecast by the
    temperatures it fitted.
    """

    def __init__(
        self,
        channels: Sequence[str],
        n_partners: int,
        scale: int,
        workflow: DefaultWorkflow,
        calibration: CalibrationRound | None = None,
    ) -> None:
        self.channels = list(channels)
        self.n_partners = n_partners
        self.scale = scale
        self.workflow = workflow
        self.calibration = calibration
        self.result: FederatedFunnel | None = None

    def __call__(self, grid: Grid, context: Context, weights: list[np.ndarray]) -> None:
        """Sum the partners' counts and forecasts of the trained model (``weights``)."""
        config: dict[str, Scalar] = {
            TASK: FUNNEL_TASK,
            COUNT_SCALE: self.scale,
            FUNNEL_CHANNELS: json.dumps(self.channels),
            FUNNEL_FORECAST: True,
        }
        fitted = None if self.calibration is None else self.calibration.result
        if fitted is not None:
            config[TEMPERATURES] = json.dumps(asdict(fitted.calibration.temperatures))
        arrays, partners = secure_sum_round(
            grid,
            context,
            weights=weights,
            config=config,
            n_partners=self.n_partners,
            scale=self.scale,
            workflow=self.workflow,
        )
        if partners:
            counts, forecast = arrays
            self.result = FederatedFunnel(
                funnel=Funnel.from_counts(counts.astype(np.int64), self.channels),
                partners=partners,
                conversion=ConversionCheck.from_sums(decode_fixed(forecast, self.scale)),
                calibrated=fitted is not None,
            )
