"""A simulated federation and its two yardsticks on one split: the side-by-side a user needs.

Federated, centralized (same model, same data, same split) and local-only (each partner alone)
are trained and scored on the same test cases, so every ratio in the report compares like with
like. The global test metric is computed on the union of the partners' test data for the report
only; in a real federation no partner ever sends it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fedpath.clients.personalize import PersonalScores, personalization_scores
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases, Partner
from fedpath.evaluate import evaluate, predict_heads
from fedpath.federation.config import FederationConfig
from fedpath.metrics.funnel import ConversionCheck, Funnel, conversion_sums, path_funnel_counts
from fedpath.models.base import NextStepModel
from fedpath.simulations.federation import FederationResult, PrivacyCallback, run_federation
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.simulations.pipeline import PreparedData
from fedpath.simulations.training import TrainSettings, fit_model
from fedpath.strategies.recorder import RoundRecord

HEADLINE = "recall@20"


@dataclass(frozen=True)
class ExperimentSettings:
    federation: FederationConfig
    partition: PartitionConfig
    train: TrainSettings  # the centralized and local-only runs' model, epochs and seed
    baselines: bool = True  # train the centralized and local-only yardsticks too


@dataclass(frozen=True)
class PartnerScores:
    name: str
    train_cases: int
    test_item_cases: int
    federated: dict[str, float]
    local: dict[str, float] | None
    centralized: dict[str, float] | None
    groups: tuple[str, ...] = ()  # the natural groups merged into the partner (Partner.groups)
    # With the federated funnel: the partner's own funnel, and its test sessions' predicted vs
    # actual conversion by the federated model. A real coordinator sees only their sums; the
    # simulation, which plays every partner, reports each.
    funnel: Funnel | None = None
    conversion: ConversionCheck | None = None


@dataclass(frozen=True)
class ExperimentResult:
    federation: FederationResult
    federated: dict[str, float]  # the global model on the union of partners' test data
    centralized: dict[str, float] | None
    partners: list[PartnerScores]
    personalization: list[PersonalScores] | None = None  # global vs adapted, per partner

    def local_summary(self, key: str = HEADLINE) -> tuple[float, float]:
        """Mean and worst local-only score over the partners that have test cases."""
        values = [p.local[key] for p in self.partners if p.local and _known(p.local.get(key))]
        return (float(np.mean(values)), float(np.min(values))) if values else (math.nan, math.nan)

    def partner_mean(self, system: str, key: str = HEADLINE) -> float:
        """Mean over partners of one system's score on each partner's own test data."""
        values = [getattr(p, system)[key] for p in self.partners if getattr(p, system)]
        values = [v for v in values if _known(v)]
        return float(np.mean(values)) if values else math.nan

    def comparison_rows(self) -> list[dict[str, Any]]:
        """The side-by-side table: federated vs centralized vs local-only."""
        rows: list[dict[str, Any]] = [
            {"system": "federated (union of partners' test)", **self.federated}
        ]
        if self.centralized is not None:
            rows.append({"system": "centralized (same data, same split)", **self.centralized})
        for system, label in (("federated", "federated"), ("local", "local-only")):
            if any(getattr(p, system) for p in self.partners):
                rows.append(
                    {
                        "system": f"{label}, mean over partners' own test",
                        **_mean_of([getattr(p, system) for p in self.partners]),
                    }
                )
        local = [p.local for p in self.partners if p.local and _known(p.local.get(HEADLINE))]
        if local:
            worst = min(local, key=lambda m: m[HEADLINE])
            rows.append({"system": "local-only, worst partner", **worst})
        return rows

    def ratios(self) -> dict[str, float]:
        """Headline ratios: federation's price against pooling, and its gain over going alone."""
        fed_vs_central = (
            self.federated[HEADLINE] / self.centralized[HEADLINE]
            if self.centralized and self.centralized[HEADLINE] > 0
            else math.nan
        )
        local_mean = self.partner_mean("local")
        fed_own = self.partner_mean("federated")
        return {
            f"federated/centralized {HEADLINE}": fed_vs_central,
            f"federated/local-only {HEADLINE} (partners' own test)": (
                fed_own / local_mean if local_mean > 0 else math.nan
            ),
        }


def _known(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _mean_of(scores: list[dict[str, float] | None]) -> dict[str, float]:
    """Per-metric mean over the partners where the metric is defined (NaN where it never is)."""
    keys = {k for s in scores if s for k in s}
    means = {}
    for key in sorted(keys):
        values = [s[key] for s in scores if s and _known(s.get(key))]
        means[key] = float(np.mean(values)) if values else math.nan
    return means


def run_experiment(
    data: PreparedData,
    settings: ExperimentSettings,
    *,
    on_stage: Callable[[str], None] = lambda stage: None,
    on_round: Callable[[RoundRecord], None] | None = None,
    on_privacy: PrivacyCallback | None = None,
) -> ExperimentResult:
    """Partition, federate, and (with baselines) train centralized and local-only models."""
    partners = partition(data.split, settings.partition)
    on_stage(f"federating {len(partners)} partners")
    federation = run_federation(
        data.split, partners, settings.federation, on_round=on_round, on_privacy=on_privacy
    )
    personal = None
    if settings.federation.personalization.epochs > 0:
        on_stage("personalizing the global model on each partner")
        personal = personalization_scores(federation.model, partners, settings.federation)
    centralized_model = None
    if settings.baselines:
        on_stage("training the centralized yardstick")
        centralized_model, _, _ = fit_model(data, settings.train, show_progress=False)

    score = _scorer(settings.train)
    scores = []
    for partner in partners:
        test = expand_prefixes(partner.data.test, max_len=settings.federation.max_len)
        local = None
        if settings.baselines:
            on_stage(f"training {partner.name} alone")
            local = score(_fit_alone(partner, data, settings), test)
        scores.append(
            PartnerScores(
                name=partner.name,
                train_cases=len(expand_prefixes(partner.data.train)),
                test_item_cases=int((test.next_item >= 0).sum()),
                federated=score(federation.model, test),
                local=local,
                centralized=score(centralized_model, test) if centralized_model else None,
                groups=partner.groups,
                **(_own_funnel(partner, federation.model, test) if federation.funnel else {}),
            )
        )
    return ExperimentResult(
        federation=federation,
        federated=score(federation.model, data.test),
        centralized=score(centralized_model, data.test) if centralized_model else None,
        partners=scores,
        personalization=personal,
    )


def _own_funnel(partner: Partner, model: NextStepModel, test: Cases) -> dict[str, Any]:
    """The partner's own funnel and forecast, computed as it computes its share of the sums."""
    sessions = [*partner.data.train, *partner.data.valid, *partner.data.test]
    furthest = np.array([s.actions.max() for s in sessions])
    predictions = predict_heads(model, test, items_k=None)  # the forecast reads conversion only
    if model.calibration is not None:
        predictions = model.calibration.temperatures.apply(predictions)
    return {
        "funnel": Funnel.from_counts(path_funnel_counts(furthest, [s.channel for s in sessions])),
        "conversion": ConversionCheck.from_sums(conversion_sums(predictions.convert_prob, test)),
    }


def _scorer(train: TrainSettings) -> Callable[[NextStepModel, Cases], dict[str, float]]:
    def score(model: NextStepModel, cases: Cases) -> dict[str, float]:
        return evaluate(model, cases, ks=train.ks, review_threshold=train.review_threshold)

    return score


def _fit_alone(partner: Partner, data: PreparedData, settings: ExperimentSettings) -> NextStepModel:
    """The partner's model trained on its own data only (its own valid split for early stopping)."""
    max_len = settings.federation.max_len
    own = replace(
        data,
        split=partner.data,
        train=expand_prefixes(partner.data.train, max_len=max_len),
        valid=expand_prefixes(partner.data.valid, max_len=max_len),
        test=expand_prefixes(partner.data.test, max_len=max_len),
    )
    model, _, _ = fit_model(own, settings.train, show_progress=False)
    return model
