"""A strategy wrapper that writes down what each round did, without changing what it does.

Wrapping (as Flower's DP strategies wrap another strategy) keeps the record the same for every
strategy and for SecAgg+ on or off: both workflows call the same four strategy methods.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flwr.common import FitIns, Parameters
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from fedpath.federation.keys import PARTNER, TRAIN_LOSS
from fedpath.strategies.flower_types import (
    EvaluateAggregate,
    EvaluateFailures,
    EvaluateResults,
    FitAggregate,
    FitFailures,
    FitResults,
)
from fedpath.strategies.meter import ByteMeter
from fedpath.strategies.wrapper import StrategyWrapper


@dataclass
class RoundRecord:
    """One round as the server saw it."""

    round: int
    sampled: int = 0  # partners asked to train
    participants: list[int] = field(default_factory=list)  # partners in the aggregate
    dropped: int = 0  # sampled partners whose update did not make it
    dropped_partners: list[int] = field(default_factory=list)  # those of them the server knows
    failures: int = 0  # errors and timeouts the workflow reported
    train_loss: float = math.nan
    loss: float = math.nan  # federated evaluation: 1 - recall@max(ks), pooled
    metrics: dict[str, float] = field(default_factory=dict)  # pooled evaluation metrics
    partner_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    fit_seconds: float = math.nan  # sampling to aggregate, SecAgg+ stages included
    round_seconds: float = math.nan  # sampling to the end of federated evaluation
    bytes_up: int = 0  # payload partners sent the server this round (training and evaluation)
    bytes_down: int = 0  # payload the server sent partners (the global weights, SecAgg+ keys)

    def row(self) -> dict[str, float | int]:
        """The flat figures of the round (one CSV row)."""
        return {
            "round": self.round,
            "sampled": self.sampled,
            "participants": len(self.participants),
            "dropped": self.dropped,
            "failures": self.failures,
            "train_loss": self.train_loss,
            "loss": self.loss,
            **self.metrics,
            "fit_seconds": self.fit_seconds,
            "round_seconds": self.round_seconds,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


RoundCallback = Callable[[RoundRecord], None]


class RoundRecorder(StrategyWrapper):
    """Delegates every decision to ``strategy`` and records sampling, replies and metrics.

    ``on_round`` is called with each round's record once its federated evaluation is in (a
    progress bar's hook); ``meter`` supplies the round's bytes where the grid is metered.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        meter: ByteMeter | None = None,
        on_round: RoundCallback | None = None,
        known_nodes: Mapping[int, int] | None = None,
    ) -> None:
        super().__init__(strategy)
        self.meter = meter
        self.on_round = on_round
        self.records: dict[int, RoundRecord] = {}
        # node id -> partner: learnt from every reply, or known up front (a deployment
        # registers each partner's node), so a partner dropping before it ever replied is named
        self._node_partner: dict[int, int] = dict(known_nodes or {})
        self._sampled_nodes: dict[int, set[int]] = {}
        self._answered_nodes: dict[int, set[int]] = {}
        self._started: dict[int, float] = {}

    def rounds(self) -> list[RoundRecord]:
        """The records in round order, dropped partners named wherever a reply ever named them."""
        for number in self.records:
            self._settle(number)
        return [self.records[n] for n in sorted(self.records)]

    def _settle(self, number: int) -> None:
        """Fill what is only known once replies are in: who dropped, and the bytes moved.

        Computed from the sampled and answering nodes, so a round whose secure aggregation
        halted (no aggregate at all) counts every sampled partner as dropped.
        """
        record = self.records[number]
        missing = self._sampled_nodes.get(number, set()) - self._answered_nodes.get(number, set())
        record.dropped = len(missing)
        record.dropped_partners = sorted(
            self._node_partner[n] for n in missing if n in self._node_partner
        )
        if self.meter is not None:
            record.bytes_up = self.meter.up[number]
            record.bytes_down = self.meter.down[number]

    def _record(self, server_round: int) -> RoundRecord:
        return self.records.setdefault(server_round, RoundRecord(round=server_round))

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self._started[server_round] = time.perf_counter()
        instructions = super().configure_fit(server_round, parameters, client_manager)
        self._sampled_nodes[server_round] = {proxy.node_id for proxy, _ in instructions}
        self._record(server_round).sampled = len(instructions)
        return instructions

    def aggregate_fit(
        self, server_round: int, results: FitResults, failures: FitFailures
    ) -> FitAggregate:
        record = self._record(server_round)
        for proxy, res in results:
            self._node_partner[proxy.node_id] = int(res.metrics[PARTNER])
        self._answered_nodes[server_round] = {proxy.node_id for proxy, _ in results}
        record.participants = sorted(int(res.metrics[PARTNER]) for _, res in results)
        record.failures = len(failures)
        parameters, metrics = super().aggregate_fit(server_round, results, failures)
        record.train_loss = float(metrics.get(TRAIN_LOSS, math.nan))
        record.fit_seconds = time.perf_counter() - self._started[server_round]
        return parameters, metrics

    def aggregate_evaluate(
        self, server_round: int, results: EvaluateResults, failures: EvaluateFailures
    ) -> EvaluateAggregate:
        """Partners without cases to evaluate answer with weight 0; they are left out here, as a
        round where nobody has any would divide by zero in Flower's weighted loss."""
        record = self._record(server_round)
        for proxy, res in results:
            partner = int(res.metrics[PARTNER])
            self._node_partner[proxy.node_id] = partner
            if res.num_examples > 0:
                record.partner_metrics[partner] = {k: float(v) for k, v in res.metrics.items()}
        scored = [(proxy, res) for proxy, res in results if res.num_examples > 0]
        loss, metrics = (
            super().aggregate_evaluate(server_round, scored, failures) if scored else (None, {})
        )
        record.loss = math.nan if loss is None else float(loss)
        record.metrics = {k: float(v) for k, v in metrics.items()}
        if server_round in self._started:
            record.round_seconds = time.perf_counter() - self._started[server_round]
        self._settle(server_round)
        if self.on_round is not None:
            self.on_round(record)
        return loss, metrics
