"""Champion / challenger: the trained model replaces the current one only on evidence.

After training, the champion (the model in use) and the candidate (this run's global model) are
scored by the same federated evaluation on the partners' held-out data; the candidate is
promoted only if it is better on the configured metric by more than the configured margin. It
is the A/B step between training a model and serving it, done without pooling any data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from flwr.common import Context, Scalar
from flwr.server import Grid
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow

from fedpath.federation.config import GateSettings
from fedpath.federation.keys import EVAL_SPLIT, SERVER_ROUND
from fedpath.server.app import run_rounds
from fedpath.strategies.factory import StrategyWiring
from fedpath.strategies.metrics import pooled_eval_metrics
from fedpath.strategies.recorder import RoundRecorder


@dataclass(frozen=True)
class GateDecision:
    """Both scores, the rule they were judged by, and the verdict."""

    metric: str
    margin: float
    split: str
    champion: float
    candidate: float
    promoted: bool
    champion_metrics: dict[str, float]
    candidate_metrics: dict[str, float]

    def row(self) -> dict[str, str | float | bool]:
        """The decision as one table row for the report."""
        return {
            "metric": self.metric,
            "split": self.split,
            "champion": self.champion,
            "candidate": self.candidate,
            "margin": self.margin,
            "promoted": self.promoted,
        }


def promotes(settings: GateSettings, champion: float, candidate: float) -> bool:
    """Whether ``candidate`` beats ``champion`` by more than the margin (NaN never does)."""
    if math.isnan(champion) or math.isnan(candidate):
        return False
    gain = candidate - champion if settings.higher_is_better else champion - candidate
    return gain > settings.margin


def _evaluate_only(_: Grid, __: Context) -> None:
    """A fit step that trains nothing: the gate only scores the weights it is given."""


class GateRound:
    """A step run after training (``build_server_app``'s ``after``): score both, decide."""

    def __init__(self, settings: GateSettings, champion: list[np.ndarray], n_partners: int) -> None:
        self.settings = settings
        self.champion = champion
        self.n_partners = n_partners
        self.result: GateDecision | None = None

    def __call__(self, grid: Grid, context: Context, weights: list[np.ndarray]) -> None:
        champion = self._score(grid, context, self.champion)
        candidate = self._score(grid, context, weights)
        metric = self.settings.metric
        old, new = champion.get(metric, math.nan), candidate.get(metric, math.nan)
        self.result = GateDecision(
            metric=metric,
            margin=self.settings.margin,
            split=self.settings.split,
            champion=old,
            candidate=new,
            promoted=promotes(self.settings, old, new),
            champion_metrics=champion,
            candidate_metrics=candidate,
        )

    def _score(self, grid: Grid, context: Context, arrays: list[np.ndarray]) -> dict[str, float]:
        """Pooled metrics of ``arrays`` over every partner's ``split`` (one evaluation round)."""

        def evaluate_config(server_round: int) -> dict[str, Scalar]:
            return {SERVER_ROUND: server_round, EVAL_SPLIT: self.settings.split}

        wiring = StrategyWiring(
            n_partners=self.n_partners,
            initial_weights=arrays,
            on_evaluate_config_fn=evaluate_config,
            evaluate_metrics_aggregation_fn=pooled_eval_metrics,
        )
        recorder = RoundRecorder(FedAvg(**wiring.flower_args()))
        workflow = DefaultWorkflow(fit_workflow=_evaluate_only)
        run_rounds(grid, context, recorder, workflow, rounds=1)
        (record,) = recorder.rounds()
        return record.metrics
