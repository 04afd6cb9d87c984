"""A strategy wrapper that writes a run's privacy spending into its ``PrivacyReport``.

Like Flower's DP wrappers and fedpath's ``RoundRecorder`` it changes nothing the strategy does:
per round it notes the session-level ε each training partner reports (what it charged its own
ledger for the run so far), the partners that refused for lack of budget, and the partner-level
ε of the aggregates released so far, which only the coordinator can account.
"""

from __future__ import annotations

from flwr.common import FitIns, Parameters
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from fedpath.federation.keys import PARTNER
from fedpath.privacy.dp import accountant
from fedpath.privacy.dp.budget import SESSION_EPSILON, refused_partner
from fedpath.privacy.dp.report import PrivacyReport, PrivacyRound
from fedpath.strategies.flower_types import FitAggregate, FitFailures, FitResults
from fedpath.strategies.wrapper import StrategyWrapper


class PrivacyTracker(StrategyWrapper):
    """Delegates everything to ``strategy`` and fills ``report`` (module doc).

    A round is recorded when it is configured: if SecAgg+ halts it (too few partners left, e.g.
    all refused), the strategy never sees its replies, and the record says nothing was released.
    """

    def __init__(self, strategy: Strategy, report: PrivacyReport, *, released: int = 0) -> None:
        """``released``: aggregates the run released before this tracker (a resumed campaign's
        checkpointed rounds), which the partner-level ε composes over."""
        super().__init__(strategy)
        self.report = report
        self._released = released  # aggregates released under partner-level DP so far

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self.report.rounds.append(PrivacyRound(round=server_round))
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self, server_round: int, results: FitResults, failures: FitFailures
    ) -> FitAggregate:
        record = self.report.rounds[-1]
        for _, res in results:
            if SESSION_EPSILON in res.metrics:
                partner = int(res.metrics[PARTNER])
                record.session_epsilon[partner] = float(res.metrics[SESSION_EPSILON])
        refused = {refused_partner(f) for f in failures if isinstance(f, BaseException)}
        record.refused = sorted(p for p in refused if p is not None)
        parameters, metrics = super().aggregate_fit(server_round, results, failures)
        record.released = parameters is not None
        partner = self.report.settings.partner
        if partner is not None:
            self._released += record.released
            record.partner_epsilon = accountant.epsilon(
                noise_multiplier=partner.noise_multiplier,
                sample_rate=self.report.sample_rate,
                steps=self._released,
                delta=self.report.settings.delta,
            )
        return parameters, metrics
