"""The Flower ``ServerApp``: the round loop over a strategy, keeping the global weights."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.common import Context
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import Strategy
from flwr.server.workflow import DefaultWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

from fedpath.errors import FedpathError
from fedpath.strategies.meter import ByteMeter

REGISTRATION_POLL_S = 0.2

# A step the server runs once training is done, given the final global arrays (the federated
# funnel, the champion / challenger gate); it keeps its own result.
AfterTraining = Callable[[Grid, Context, list[np.ndarray]], None]
# A step the server runs before training, on the same partners (the pair sketch's sizing).
BeforeTraining = Callable[[Grid, Context], None]


@dataclass
class ServerOutcome:
    """Filled by the server's main when the last round is done (the app runs in a thread)."""

    weights: list[np.ndarray] | None = None


def await_partners(grid: Grid, n_partners: int, timeout: float) -> None:
    """Block until ``n_partners`` nodes are connected.

    Flower's legacy strategies size a round's sample from the nodes connected at that instant,
    so a round 1 started while partners are still registering would silently train on fewer.
    """
    deadline = time.monotonic() + timeout
    while len(grid.get_node_ids()) < n_partners:
        if time.monotonic() > deadline:
            raise FedpathError(
                f"{n_partners} partners must connect within {timeout:.0f} s, "
                f"got {len(grid.get_node_ids())}"
            )
        time.sleep(REGISTRATION_POLL_S)


def run_rounds(
    grid: Grid, context: Context, strategy: Strategy, workflow: DefaultWorkflow, rounds: int
) -> list[np.ndarray]:
    """Run ``rounds`` rounds of ``workflow`` over ``strategy``; return the final global arrays."""
    legacy = LegacyContext(
        context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy
    )
    workflow(grid, legacy)
    return legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()


def build_server_app(
    strategy: Strategy,
    workflow: DefaultWorkflow,
    *,
    rounds: int,
    n_partners: int,
    outcome: ServerOutcome,
    after: Sequence[AfterTraining] = (),
    before: Sequence[BeforeTraining] = (),
    meter: ByteMeter | None = None,
    registration_timeout: float = 300.0,
) -> ServerApp:
    """A ``ServerApp`` that waits for every partner, runs the rounds and fills ``outcome``.

    The ``before`` steps run first; ``meter`` counts the training rounds' bytes; the ``after``
    steps then run in order on the same partners, each an extra round not counted as training.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        await_partners(grid, n_partners, registration_timeout)
        for first in before:
            first(grid, context)
        training_grid = grid if meter is None else meter.wrap(grid)
        outcome.weights = run_rounds(training_grid, context, strategy, workflow, rounds)
        for step in after:
            step(grid, context, outcome.weights)

    return app
