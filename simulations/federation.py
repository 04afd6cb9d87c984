"""``run_federation``: one simulated federated run of partners over a split log, end to end.

Partners' cases go to a private temporary folder (one file each), the server and the partners'
``ClientApp`` are built from the config, and Flower's simulation engine plays every partner in
its own process. What comes back is the final global model and what each round did.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
from flwr.simulation import run_simulation

from fedpath.clients.app import build_client_app
from fedpath.clients.client import ClientSettings
from fedpath.clients.faults import FaultPlan, plan_dropouts
from fedpath.clients.store import save_partner, save_paths
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Partner, SplitDataset
from fedpath.errors import ConfigError, FedpathError
from fedpath.federation.config import FederationConfig
from fedpath.federation.contract import require_dense_pairs
from fedpath.federation.spec import ModelSpec
from fedpath.models.base import NextStepModel
from fedpath.privacy.crypto import load_model_file
from fedpath.privacy.dp.client import PartnerPrivacy
from fedpath.privacy.dp.config import check_combination
from fedpath.privacy.dp.report import PrivacyReport
from fedpath.quiet import quiet_known_noise
from fedpath.server.app import AfterTraining, ServerOutcome, build_server_app
from fedpath.server.calibration_round import CalibrationRound, FederatedCalibration
from fedpath.server.funnel import FederatedFunnel, FunnelRound
from fedpath.server.gate import GateDecision, GateRound
from fedpath.server.pair_size_round import PairSizeRound
from fedpath.server.sum_round import sum_workflow
from fedpath.strategies.factory import sampled_partners
from fedpath.strategies.meter import ByteMeter
from fedpath.strategies.privacy_tracker import PrivacyTracker
from fedpath.strategies.recorder import RoundCallback, RoundRecord, RoundRecorder
from fedpath.strategies.secure_sum import count_scale
from fedpath.strategies.stack import federation_strategy, seen_rows_table
from fedpath.strategies.workflow import build_workflow

PrivacyCallback = Callable[[PartnerPrivacy, bool], None]  # the run's DP, count model or not


@dataclass(frozen=True)
class FederationResult:
    """The global model after the last round, the record of every round, and what ran after.

    ``model`` is the trained candidate whatever the gate decided: ``gate.promoted`` says whether
    it should replace the champion. It carries ``calibration.calibration`` when that round ran.
    """

    model: NextStepModel
    weights: dict[str, np.ndarray]
    rounds: list[RoundRecord]
    partner_names: list[str]
    seconds: float
    funnel: FederatedFunnel | None = None  # with config.funnel.enabled
    calibration: FederatedCalibration | None = None  # with config.calibration, without DP
    gate: GateDecision | None = None  # with config.gate.enabled
    privacy: PrivacyReport | None = None  # with config.privacy.enabled: ε per round, refusals
    pair_size: PairSizeRound | None = None  # under pair_cells: auto: the agreed sketch size


def run_federation(
    split: SplitDataset,
    partitions: Sequence[Partner],
    config: FederationConfig,
    *,
    on_round: RoundCallback | None = None,
    on_privacy: PrivacyCallback | None = None,
) -> FederationResult:
    """Train ``config.model`` across ``partitions`` (from ``partition(split, ...)``) with Flower.

    ``on_round`` receives each training round's record as soon as its evaluation is in.
    ``on_privacy`` receives the run's DP (its run id keys the partners' ledger charges) and
    whether the model counts, before any partner can charge: a run killed later has said what
    it may spend.
    """
    partners = list(partitions)
    spec = ModelSpec(config.model, split.n_items, dict(config.model_params), config.seed)
    _check(config, spec, split, partners)
    item_table = seen_rows_table(config, spec)
    if spec.sized_by_run and config.privacy.enabled:
        spec = spec.with_dense_pairs()  # DP's noise covers every pair; no un-noised size sum
    sizing = _pair_size_round(config, spec, len(partners))
    scale = count_scale(len(partners), config.secagg.modulus_range) if spec.is_count else None
    calibration = _calibration_round(config, len(partners))
    funnel = _funnel_round(config, split, len(partners), calibration)
    gate = _gate_round(config, spec, len(partners))
    after: list[AfterTraining] = [s for s in (calibration, funnel, gate) if s is not None]
    privacy = _partner_privacy(config, len(partners))
    if privacy is not None and on_privacy is not None:
        on_privacy(privacy, spec.is_count)
    report = None
    started = time.perf_counter()
    with TemporaryDirectory(prefix="fedpath-partners-") as folder:
        train_sizes = _store(Path(folder), partners, config.max_len)
        meter = ByteMeter()
        weights = spec.to_arrays(spec.initial_weights)
        strategy = federation_strategy(
            config,
            weights,
            len(partners),
            scale,
            None if sizing is None else sizing.agreed_cells,
            item_table,
        )
        if privacy is not None:
            report = PrivacyReport(config.privacy, privacy.sampled / len(partners))
            strategy = PrivacyTracker(strategy, report)
        recorder = RoundRecorder(strategy, meter=meter, on_round=on_round)
        # Under DP every partner reports weight 1 (its size is not private): an unweighted mean.
        max_weight = max(train_sizes) if privacy is None else 1.0
        workflow = build_workflow(
            config.secagg,
            max_weight=max_weight,
            sampled=sampled_partners(len(partners), config.fraction_fit),
            count_scale=scale,
        )
        outcome = ServerOutcome()
        settings = ClientSettings(
            model=spec,
            data_dir=Path(folder),
            ks=config.ks,
            review_threshold=config.review_threshold,
            threads=config.threads_per_partner,
            faults=_fault_plan(config, len(partners)),
            privacy=privacy,
        )
        quiet_known_noise()
        run_simulation(
            server_app=build_server_app(
                recorder,
                workflow,
                rounds=config.rounds,
                n_partners=len(partners),
                outcome=outcome,
                after=after,
                before=[] if sizing is None else [sizing],
                meter=meter,
            ),
            client_app=build_client_app(settings, secagg=config.secagg.enabled),
            num_supernodes=len(partners),
            backend_config={
                "client_resources": {"num_cpus": config.cpus_per_partner, "num_gpus": 0.0}
            },
        )
    rounds = recorder.rounds()
    if outcome.weights is None or not any(r.participants for r in rounds):
        raise FedpathError(
            f"federation of {len(partners)} partners aggregated no update in "
            f"{config.rounds} round(s); see the Flower log above for the partners' errors"
        )
    for step, name in ((calibration, "calibration"), (funnel, "funnel"), (gate, "gate")):
        if step is not None and step.result is None:
            raise FedpathError(
                f"the federated {name} round must complete after training, got no result; "
                "see the Flower log above for the partners' errors"
            )
    weights = spec.from_arrays(outcome.weights)
    model = spec.build()
    model.set_weights(weights)
    if calibration is not None and calibration.result is not None:
        model.calibration = calibration.result.calibration
    return FederationResult(
        model=model,
        weights=weights,
        rounds=rounds,
        partner_names=[p.name for p in partners],
        seconds=time.perf_counter() - started,
        funnel=None if funnel is None else funnel.result,
        calibration=None if calibration is None else calibration.result,
        gate=None if gate is None else gate.result,
        privacy=report,
        pair_size=sizing,
    )


def _check(
    config: FederationConfig, spec: ModelSpec, split: SplitDataset, partners: list[Partner]
) -> None:
    if len(partners) < 2:
        raise ConfigError(f"partitions must hold at least 2 partners, got {len(partners)}")
    sizes = sorted({p.data.n_items for p in partners})
    if sizes != [split.n_items]:
        raise ConfigError(
            f"partitions must share the split's vocabulary of {split.n_items} items, got {sizes}"
        )
    if spec.is_count and config.fraction_fit != 1.0:
        raise ConfigError(
            f"fraction_fit must be 1.0 for count models (the global counts are one sum over "
            f"every partner), got {config.fraction_fit}"
        )
    if spec.is_count != (config.strategy == "sum"):
        raise ConfigError(
            f"strategy must be 'sum' exactly for count models, got strategy {config.strategy!r} "
            f"with model {config.model!r}"
        )
    faults = config.faults
    if spec.is_count and (faults.dropout_fraction or faults.hostile_partners):
        raise ConfigError(
            f"faults must be off for count models (their global counts are one sum over every "
            f"partner), got dropout_fraction {faults.dropout_fraction} and hostile partners "
            f"{list(faults.hostile_partners)}"
        )
    outside = sorted(p for p in faults.hostile_partners if p >= len(partners))
    if outside:
        raise ConfigError(
            f"faults.hostile_partners must be partner indices below {len(partners)}, got {outside}"
        )
    require_dense_pairs(config.privacy, spec)
    check_combination(
        config.privacy,
        secagg=config.secagg.enabled,
        count_model=spec.is_count,
        strategy=config.strategy,
        funnel=config.funnel.enabled,
    )


def _partner_privacy(config: FederationConfig, n_partners: int) -> PartnerPrivacy | None:
    """The run's DP as every partner applies it; a fresh run id keys the partners' ledgers."""
    if not config.privacy.enabled:
        return None
    return PartnerPrivacy(
        settings=config.privacy,
        run_id=uuid.uuid4().hex,
        n_partners=n_partners,
        sampled=sampled_partners(n_partners, config.fraction_fit),
        secagg=config.secagg.enabled,
    )


def _fault_plan(config: FederationConfig, n_partners: int) -> FaultPlan:
    faults = config.faults
    return FaultPlan(
        dropouts=plan_dropouts(faults.dropout_fraction, n_partners, config.rounds, config.seed),
        hostile=frozenset(faults.hostile_partners),
        attack=faults.attack,
        factor=faults.attack_factor,
    )


def _pair_size_round(
    config: FederationConfig, spec: ModelSpec, n_partners: int
) -> PairSizeRound | None:
    """The secure sum that sizes the pair sketch, for a pair-count model under ``auto``."""
    if not spec.sized_by_run:
        return None
    return PairSizeRound(n_partners, *sum_workflow(config.secagg, n_partners))


def _calibration_round(config: FederationConfig, n_partners: int) -> CalibrationRound | None:
    """The calibration round, unless off or under DP (its sums would carry no noise)."""
    if not config.calibration or config.privacy.enabled:
        return None
    return CalibrationRound(
        n_partners, *sum_workflow(config.secagg, n_partners), config.review_threshold
    )


def _funnel_round(
    config: FederationConfig,
    split: SplitDataset,
    n_partners: int,
    calibration: CalibrationRound | None,
) -> FunnelRound | None:
    """The secure-sum funnel round, over the configured channels or every channel of the log;
    its forecast is calibrated by ``calibration``'s temperatures when that round ran."""
    if not config.funnel.enabled:
        return None
    channels = config.funnel.channels
    if channels is None:
        sessions = [*split.train, *split.valid, *split.test]
        channels = tuple(sorted({s.channel for s in sessions if s.channel is not None}))
    return FunnelRound(channels, n_partners, *sum_workflow(config.secagg, n_partners), calibration)


def _gate_round(config: FederationConfig, spec: ModelSpec, n_partners: int) -> GateRound | None:
    if not config.gate.enabled:
        return None
    return GateRound(config.gate, _champion(config, spec), n_partners)


def _champion(config: FederationConfig, spec: ModelSpec) -> list[np.ndarray]:
    """The gate's champion: the configured model file, or the weights the run starts from."""
    path = config.gate.champion
    if path is None:
        return spec.to_arrays(spec.initial_weights)
    model = load_model_file(path)  # an encrypted champion needs $FEDPATH_MODEL_KEY
    same = (model.name, model.n_items) == (spec.name, spec.n_items)
    arrays = spec.to_arrays(model.get_weights()) if same else []  # in the wire's layout
    # under pair_cells: auto a lone table's sketch is sized by its own pairs: shapes vary
    if not same or (
        not spec.sized_by_run
        and [a.shape for a in arrays] != [a.shape for a in spec.to_arrays(spec.initial_weights)]
    ):
        raise ConfigError(
            f"gate.champion {path} must be a {spec.name!r} model with the run's arrays "
            f"({spec.n_items} items), got a {model.name!r} model over {model.n_items} items"
        )
    return arrays


def _store(folder: Path, partners: list[Partner], max_len: int) -> list[int]:
    """Write each partner's cases; return each partner's number of train cases."""
    sizes = []
    for partner in partners:
        cases = {
            name: expand_prefixes(getattr(partner.data, name), max_len=max_len)
            for name in ("train", "valid", "test")
        }
        save_partner(folder, partner.index, cases)
        save_paths(
            folder, partner.index, [*partner.data.train, *partner.data.valid, *partner.data.test]
        )
        sizes.append(len(cases["train"]))
    return sizes
