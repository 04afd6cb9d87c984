"""The strategy a federation runs, whether simulated (``federation``) or deployed (``campaign``).

Both hand Flower's strategy the same round instructions (round number, local epochs, the count
scale of a count model, the split to evaluate) and the same metric aggregation, so a deployed
campaign trains exactly as its simulation did; that wiring is written once here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.common import Scalar
from flwr.server.strategy import Strategy

from fedpath.errors import ConfigError
from fedpath.federation.config import FederationConfig
from fedpath.federation.keys import (
    COUNT_SCALE,
    EVAL_SPLIT,
    ITEM_ROWS,
    LOCAL_EPOCHS,
    PAIR_CELLS,
    SEEN_ROWS,
    SERVER_ROUND,
)
from fedpath.federation.spec import ModelSpec
from fedpath.strategies.factory import ROBUST, StrategyWiring, build_strategy
from fedpath.strategies.metrics import mean_train_loss, pooled_eval_metrics
from fedpath.strategies.seen_rows import ITEM_TABLE, SeenItemRows


def federation_strategy(
    config: FederationConfig,
    initial_weights: list[np.ndarray],
    n_partners: int,
    scale: int | None,
    pair_cells: Callable[[], int] | None = None,
    item_table: int | None = None,
) -> Strategy:
    """``config``'s strategy over ``n_partners`` (the number Flower waits for before round 1).

    ``scale`` is the secure count sum's scale for a count model (None for a neural one);
    ``pair_cells`` gives the pair sketch's size the run agreed before training, under
    ``pair_cells: auto``; partner level DP wraps the strategy where ``config.privacy`` enables it.
    """

    def fit_config(server_round: int) -> dict[str, Scalar]:
        values: dict[str, Scalar] = {SERVER_ROUND: server_round, LOCAL_EPOCHS: config.local_epochs}
        if scale is not None:
            values[COUNT_SCALE] = scale
        if pair_cells is not None:
            values[PAIR_CELLS] = pair_cells()
        if item_table is not None:
            values[ITEM_ROWS] = SEEN_ROWS
        return values

    def evaluate_config(server_round: int) -> dict[str, Scalar]:
        return {SERVER_ROUND: server_round, EVAL_SPLIT: config.eval_split}

    wiring = StrategyWiring(
        n_partners=n_partners,
        initial_weights=initial_weights,
        fraction_fit=config.fraction_fit,
        fraction_evaluate=config.fraction_evaluate,
        on_fit_config_fn=fit_config,
        on_evaluate_config_fn=evaluate_config,
        fit_metrics_aggregation_fn=mean_train_loss,
        evaluate_metrics_aggregation_fn=pooled_eval_metrics,
    )
    params = dict(config.strategy_params)
    if scale is not None:
        params["scale"] = scale
    strategy = build_strategy(
        config.strategy,
        params,
        secagg=config.secagg.enabled,
        wiring=wiring,
        privacy=config.privacy if config.privacy.enabled else None,
    )
    return strategy if item_table is None else SeenItemRows(strategy, item_table)


def seen_rows_table(config: FederationConfig, spec: ModelSpec) -> int | None:
    """The wire index of the item table under ``item_rows: seen`` (None under ``all``); refused
    where the per-row mean has no meaning: count models (sums, not means), robust rules (they
    judge each update, not a mean) and differential privacy (the mask would carry no noise)."""
    if config.item_rows != SEEN_ROWS:
        return None
    if spec.is_count or config.strategy in ROBUST or config.strategy == "sum":
        raise ConfigError(
            f"item_rows: seen needs a neural model and a mean-based strategy, got model "
            f"{config.model!r} and strategy {config.strategy!r}"
        )
    if config.privacy.enabled:
        raise ConfigError(
            "item_rows: seen cannot run under differential privacy (its mask is not noised)"
        )
    return spec.names.index(ITEM_TABLE)
