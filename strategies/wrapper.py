"""A Flower strategy that hands every call to another one, for wrappers to override a few.

fedpath wraps strategies (as Flower's DP strategies do) to record rounds, account privacy or
renumber resumed rounds without changing what the wrapped strategy decides. Each wrapper
overrides only the calls it watches; the forwarding of the others lives here once.
"""

from __future__ import annotations

from flwr.common import EvaluateIns, FitIns, Parameters, Scalar
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from fedpath.strategies.flower_types import (
    EvaluateAggregate,
    EvaluateFailures,
    EvaluateResults,
    FitAggregate,
    FitFailures,
    FitResults,
)


class StrategyWrapper(Strategy):
    """Forwards every call to ``strategy``, the round number passed through ``inner_round``."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.strategy!r})"

    def inner_round(self, server_round: int) -> int:
        """The round number the wrapped strategy is told (the same, unless a wrapper shifts it)."""
        return server_round

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self.strategy.initialize_parameters(client_manager)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        return self.strategy.configure_fit(
            self.inner_round(server_round), parameters, client_manager
        )

    def aggregate_fit(
        self, server_round: int, results: FitResults, failures: FitFailures
    ) -> FitAggregate:
        return self.strategy.aggregate_fit(self.inner_round(server_round), results, failures)

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return self.strategy.configure_evaluate(
            self.inner_round(server_round), parameters, client_manager
        )

    def aggregate_evaluate(
        self, server_round: int, results: EvaluateResults, failures: EvaluateFailures
    ) -> EvaluateAggregate:
        return self.strategy.aggregate_evaluate(self.inner_round(server_round), results, failures)

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        return self.strategy.evaluate(self.inner_round(server_round), parameters)
