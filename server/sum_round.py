"""One secure-sum round after training: every partner's share of a sum, revealed only summed.

The funnel and the calibration rounds differ only in what they ask for (the fit config's
``TASK``); this is the round they share: the trained model goes out as the round's parameters
(a partner scores its own cases with it), each partner answers its sums encoded for the exact
secure sum (``strategies/secure_sum.py``) with weight 1, and the server decodes the sum.
"""

from __future__ import annotations

import numpy as np
from flwr.common import Context, Scalar
from flwr.server import Grid
from flwr.server.workflow import DefaultWorkflow

from fedpath.federation.config import SecAggSettings
from fedpath.server.app import run_rounds
from fedpath.strategies.factory import StrategyWiring
from fedpath.strategies.metrics import mean_train_loss
from fedpath.strategies.recorder import RoundRecorder
from fedpath.strategies.secure_sum import SecureSum, count_scale
from fedpath.strategies.workflow import build_workflow


def sum_workflow(secagg: SecAggSettings, n_partners: int) -> tuple[int, DefaultWorkflow]:
    """The count scale and workflow of a secure-sum round over ``n_partners``, weight 1 each."""
    scale = count_scale(n_partners, secagg.modulus_range)
    return scale, build_workflow(secagg, max_weight=1.0, sampled=n_partners, count_scale=scale)


def secure_sum_round(
    grid: Grid,
    context: Context,
    *,
    weights: list[np.ndarray],
    config: dict[str, Scalar],
    n_partners: int,
    scale: int,
    workflow: DefaultWorkflow,
) -> tuple[list[np.ndarray], list[int]]:
    """(the summed arrays, the partners in the sum); no arrays when no partner answered."""
    wiring = StrategyWiring(
        n_partners=n_partners,
        initial_weights=weights,
        fraction_evaluate=0.0,  # nothing to evaluate: the round only sums
        on_fit_config_fn=lambda _: config,
        fit_metrics_aggregation_fn=mean_train_loss,  # none to pool; Flower warns without one
    )
    recorder = RoundRecorder(SecureSum(scale=scale, **wiring.flower_args()))
    total = run_rounds(grid, context, recorder, workflow, rounds=1)
    (record,) = recorder.rounds()
    return (total, record.participants) if record.participants else ([], [])
