"""The federated model's calibration: temperatures and certified review cutoffs fitted on the
partners' valid cases, seen by the server only as secure sums.

Two secure-sum rounds after training (``server/sum_round.py``). In the first each partner scores
its valid cases with the trained model and sends its summed NLL on the temperature grid; the
server picks the temperatures (``fedpath.calibration_sums``). In the second, given those
temperatures, each partner sends the review gate's counts per candidate cutoff (cases handled,
right among them) for every decision; the server certifies the cutoffs. Both fits read only
these sums, so they equal a central fit on the union of the partners' valid cases, up to the
fixed-point rounding of the NLL sums (``strategies/secure_sum.py``: at most N * 2**-21 nats on
sums that differ between neighbouring grid points by far more; the counts are exact).

The server learns the union's NLL curve and counts, never a partner's own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
from flwr.common import Context, Scalar
from flwr.server import Grid
from flwr.server.workflow import DefaultWorkflow

from fedpath.calibration_sums import calibration_from_counts, temperatures_from_nll
from fedpath.federation.keys import (
    COUNT_SCALE,
    GATE_COUNTS_TASK,
    NLL_TASK,
    REVIEW_THRESHOLD,
    TASK,
    TEMPERATURES,
)
from fedpath.models.calibration import Calibration
from fedpath.server.sum_round import secure_sum_round
from fedpath.strategies.secure_sum import decode_fixed


@dataclass(frozen=True)
class FederatedCalibration:
    """The calibration the federated model carries, and the partners whose sums fitted it."""

    calibration: Calibration
    temperature_partners: list[int]
    cutoff_partners: list[int]


class CalibrationRound:
    """A step run after training (``build_server_app``'s ``after``): two secure sums."""

    def __init__(
        self, n_partners: int, scale: int, workflow: DefaultWorkflow, threshold: float
    ) -> None:
        self.n_partners = n_partners
        self.scale = scale
        self.workflow = workflow
        self.threshold = threshold
        self.result: FederatedCalibration | None = None

    def __call__(self, grid: Grid, context: Context, weights: list[np.ndarray]) -> None:
        nll, first = self._sum(grid, context, weights, {TASK: NLL_TASK})
        if not first:
            return
        temperatures = temperatures_from_nll(nll)
        counts, second = self._sum(
            grid,
            context,
            weights,
            {
                TASK: GATE_COUNTS_TASK,
                TEMPERATURES: json.dumps(asdict(temperatures)),
                REVIEW_THRESHOLD: self.threshold,
            },
        )
        if second:
            calibration = calibration_from_counts(temperatures, counts, self.threshold)
            self.result = FederatedCalibration(calibration, first, second)

    def _sum(
        self, grid: Grid, context: Context, weights: list[np.ndarray], config: dict[str, Scalar]
    ) -> tuple[np.ndarray, list[int]]:
        arrays, partners = secure_sum_round(
            grid,
            context,
            weights=weights,
            config={**config, COUNT_SCALE: self.scale},
            n_partners=self.n_partners,
            scale=self.scale,
            workflow=self.workflow,
        )
        return (decode_fixed(arrays[0], self.scale) if partners else np.empty(0)), partners
