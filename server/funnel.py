"""The federated shopping funnel: every partner's funnel counts, revealed only as their sum.

Funnel counts are additive, so the global funnel is one secure sum of the partners' count
vectors. It reuses the exact secure-sum encoding of the count models (``strategies/
secure_sum.py``) through the same SecAgg+ workflow, as one extra round after training: the
server learns the union's funnel and nothing about any partner's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from flwr.common import Context, Scalar
from flwr.server import Grid
from flwr.server.workflow import DefaultWorkflow

from fedpath.federation.keys import COUNT_SCALE, FUNNEL_CHANNELS, FUNNEL_TASK, TASK
from fedpath.metrics.funnel import STAGES, Funnel
from fedpath.server.app import run_rounds
from fedpath.strategies.factory import StrategyWiring
from fedpath.strategies.metrics import mean_train_loss
from fedpath.strategies.recorder import RoundRecorder
from fedpath.strategies.secure_sum import SecureSum


@dataclass(frozen=True)
class FederatedFunnel:
    """The union's funnel and the partners whose counts are in it (all, unless one failed)."""

    funnel: Funnel
    partners: list[int]


class FunnelRound:
    """A step run after training (``build_server_app``'s ``after``): one secure-sum round."""

    def __init__(
        self, channels: Sequence[str], n_partners: int, scale: int, workflow: DefaultWorkflow
    ) -> None:
        self.channels = list(channels)
        self.n_partners = n_partners
        self.scale = scale
        self.workflow = workflow
        self.result: FederatedFunnel | None = None

    def __call__(self, grid: Grid, context: Context, weights: list[np.ndarray]) -> None:
        """Sum the partners' counts; ``weights`` (the trained model) play no part."""
        config: dict[str, Scalar] = {
            TASK: FUNNEL_TASK,
            COUNT_SCALE: self.scale,
            FUNNEL_CHANNELS: json.dumps(self.channels),
        }
        zeros = np.zeros(len(STAGES) * (1 + len(self.channels)))
        wiring = StrategyWiring(
            n_partners=self.n_partners,
            initial_weights=[zeros],
            fraction_evaluate=0.0,  # nothing to evaluate: the round only sums
            on_fit_config_fn=lambda _: config,
            fit_metrics_aggregation_fn=mean_train_loss,  # none to pool; Flower warns without one
        )
        recorder = RoundRecorder(SecureSum(scale=self.scale, **wiring.flower_args()))
        (total,) = run_rounds(grid, context, recorder, self.workflow, rounds=1)
        (record,) = recorder.rounds()
        if record.participants:
            counts = total.astype(np.int64)
            self.result = FederatedFunnel(
                Funnel.from_counts(counts, self.channels), record.participants
            )
