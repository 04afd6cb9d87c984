"""Hand the promoted model to every partner, through Flower itself.

Partners serve predictions from their own machines, which do not share the coordinator's disk.
Rather than a second channel, the promoted version travels the one the federation already
trusts (TLS, node authentication): one evaluation round whose parameters are the promoted
weights and whose config names the version. Each partner stores it in its local registry,
promotes it there (its prediction server picks it up) and answers with its usual evaluation of
that model on its own held-out cases, which the coordinator records as the published model's
score.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np
from flwr.common import Context, Scalar
from flwr.server import Grid
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow

from fedpath.federation.keys import (
    EVAL_SPLIT,
    PUBLISH_CALIBRATION,
    PUBLISH_CARD,
    PUBLISH_DECISION,
    PUBLISH_VERSION,
    SERVER_ROUND,
)
from fedpath.federation.registry import ModelVersion
from fedpath.models.calibration import Calibration
from fedpath.server.app import run_rounds
from fedpath.strategies.factory import StrategyWiring
from fedpath.strategies.metrics import pooled_eval_metrics
from fedpath.strategies.recorder import RoundRecord, RoundRecorder


def publish_config(
    card: ModelVersion, decision: dict[str, Any], calibration: Calibration | None = None
) -> dict[str, Scalar]:
    """What a partner needs besides the weights to file the version exactly as registered,
    and to answer with the same calibrated probabilities and review cutoffs."""
    config: dict[str, Scalar] = {
        PUBLISH_VERSION: card.version,
        PUBLISH_CARD: json.dumps(asdict(card)),
        PUBLISH_DECISION: json.dumps(decision, default=str),
    }
    if calibration is not None:
        config[PUBLISH_CALIBRATION] = json.dumps(calibration.to_dict())
    return config


def _no_training(_: Grid, __: Context) -> None:
    """The fit step of a publish round: nothing is trained, the weights are only handed out."""


def publish(
    grid: Grid,
    context: Context,
    *,
    card: ModelVersion,
    decision: dict[str, Any],
    arrays: list[np.ndarray],
    min_partners: int,
    split: str,
    calibration: Calibration | None = None,
) -> RoundRecord:
    """Send ``arrays`` (version ``card``) to every connected partner; their scores come back."""

    def evaluate_config(server_round: int) -> dict[str, Scalar]:
        return {
            SERVER_ROUND: server_round,
            EVAL_SPLIT: split,
            **publish_config(card, decision, calibration),
        }

    wiring = StrategyWiring(
        n_partners=min_partners,
        initial_weights=arrays,
        on_evaluate_config_fn=evaluate_config,
        evaluate_metrics_aggregation_fn=pooled_eval_metrics,
    )
    recorder = RoundRecorder(FedAvg(**wiring.flower_args()))
    run_rounds(grid, context, recorder, DefaultWorkflow(fit_workflow=_no_training), rounds=1)
    (record,) = recorder.rounds()
    return record
