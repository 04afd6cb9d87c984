"""One training campaign of a deployed federation, as the ServerApp runs it: wait for partners,
train the remaining rounds (checkpointing and registering each), calibrate the campaign's model
from secure sums of the partners' valid cases (``server/calibration_round.py``), let the
champion / challenger gate decide, and publish the promoted model to every partner.

A campaign is resumable at every step. Rounds restart after the last checkpointed one; the gate
and the publication run again if the coordinator died during them (both are idempotent: the
same decision on the same models, the same version handed out again); the calibration runs
again only if the registered model does not carry one yet.

Under the contract's differential privacy the strategy is the simulation's (partner-level DP
wrapped by ``federation_strategy``, every partner weighing 1), and a ``PrivacyTracker`` reads
what each round spent: the session-level ε each partner reports (what it charged its own ledger
for the campaign so far), the partners that refused for lack of budget, and the partner-level ε
only the coordinator can account. Each checkpointed round keeps its share (``privacy`` in its
record), and the status shows the latest ε per partner name as ``epsilon_by_partner``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import numpy as np
from flwr.common import Context, Message
from flwr.server import Grid
from flwr.server.strategy import Strategy
from flwr.server.workflow import DefaultWorkflow

from fedpath.errors import FedpathError
from fedpath.federation.registry import ModelRegistry
from fedpath.privacy.dp.report import PrivacyReport, PrivacyRound
from fedpath.privacy.keys import model_key
from fedpath.server.app import await_partners, run_rounds
from fedpath.server.calibration_round import CalibrationRound
from fedpath.server.deployed.checkpoint import (
    Checkpoint,
    CheckpointEachRound,
    CheckpointStore,
)
from fedpath.server.deployed.partner_grid import PartnerGrid
from fedpath.server.deployed.publish import publish
from fedpath.server.deployed.settings import NODE_IDS, CoordinatorSettings, registered_nodes
from fedpath.server.deployed.status import CAMPAIGN, write_status
from fedpath.server.gate import GateRound
from fedpath.server.pair_size_round import PairSizeRound
from fedpath.server.sum_round import sum_workflow
from fedpath.strategies.factory import sampled_partners
from fedpath.strategies.meter import ByteMeter, payload_bytes
from fedpath.strategies.privacy_tracker import PrivacyTracker
from fedpath.strategies.recorder import RoundRecord, RoundRecorder
from fedpath.strategies.resume import ResumedRounds, restore_strategy_state, strategy_state
from fedpath.strategies.secure_sum import count_scale
from fedpath.strategies.stack import federation_strategy
from fedpath.strategies.workflow import build_workflow

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoint"
REGISTRY = "registry"


class ShiftedMeter(ByteMeter):
    """A ``ByteMeter`` whose round numbers continue a resumed campaign's count."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset

    def count(self, messages: Iterable[Message], direction: Counter[int]) -> None:
        for message in messages:
            group = message.metadata.group_id
            if group.isdigit():
                direction[int(group) + self.offset] += payload_bytes(message)


class Campaign:
    """The campaign of a state folder: its checkpoint, registry and status live there."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings
        self.config = settings.federation
        self.spec = settings.workspace.federation.model_spec()
        key = model_key(settings.workspace.model_key)
        self.checkpoints = CheckpointStore(settings.state / CHECKPOINTS, key=key)
        self.registry = ModelRegistry(settings.state / REGISTRY, key=key)
        self.scale = (
            count_scale(len(settings.workspace.partners), self.config.secagg.modulus_range)
            if self.spec.is_count
            else None
        )
        self.status: dict[str, Any] = {}
        self.partner_grid: PartnerGrid | None = None
        self.privacy: PrivacyReport | None = None  # this run's rounds, under the contract's DP

    # ------------------------------------------------------------------------------ the run
    def run(self, grid: Grid, context: Context) -> None:
        grid = self._partners_only(grid)
        checkpoint = self._checkpoint()
        earlier = self.registry.promoted()
        self._status(
            state="waiting for partners",
            rounds=checkpoint.rounds,
            completed_rounds=checkpoint.round,
            records=checkpoint.records,
            promoted=earlier and {"version": earlier.version, "reason": "an earlier campaign's"},
            **self._epsilon(checkpoint.records),
        )
        self._await(grid)
        if checkpoint.remaining:
            log.info(
                "campaign %s: rounds %d to %d",
                self.settings.campaign,
                checkpoint.round + 1,
                checkpoint.rounds,
                extra={"event": "training", "from_round": checkpoint.round + 1},
            )
            checkpoint = self._train(grid, context, checkpoint)
        self._calibrate(grid, context, checkpoint)
        self._status(state="gating")
        promoted_version, decision = self._gate(grid, context, checkpoint)
        if promoted_version is None:
            log.warning(
                "no model is promoted: the campaign's model did not beat its starting weights",
                extra={"event": "nothing_promoted", **decision},
            )
        else:
            self._status(state="publishing")
            self._publish(grid, context, promoted_version, decision)
        self._status(state="finished", connected_nodes=sorted(grid.get_node_ids()))

    def _partners_only(self, grid: Grid) -> Grid:
        """``grid`` restricted to the provisioned partners' node ids: no other node is sampled."""
        ids = registered_nodes(self.settings.state)
        partners = [ids[p.name] for p in self.settings.workspace.partners if p.name in ids]
        if not partners:
            raise FedpathError(
                f"{self.settings.state / NODE_IDS} must name the provisioned partners' node ids, "
                f"got {ids}; the coordinator writes it when it registers their keys"
            )
        self.partner_grid = PartnerGrid(grid, partners)
        return self.partner_grid  # type: ignore[return-value]

    def _checkpoint(self) -> Checkpoint:
        """Resume this campaign's checkpoint, or start it (from the promoted model if asked)."""
        found = self.checkpoints.load()
        if found is not None and found.campaign == self.settings.campaign:
            log.info(
                "campaign %s resumes after round %d of %d",
                found.campaign,
                found.round,
                found.rounds,
                extra={"event": "resume", "round": found.round},
            )
            return found
        return Checkpoint(
            campaign=self.settings.campaign,
            round=0,
            rounds=self.config.rounds,
            weights=self._start_weights(),
            config_hash=self.settings.config_hash,
        )

    def _start_weights(self) -> list[np.ndarray]:
        promoted = self.registry.promoted()
        if self.settings.warm_start and promoted is not None and not self.spec.is_count:
            return self.spec.to_arrays(self.registry.load(promoted.version).get_weights())
        return self.spec.to_arrays(self.spec.initial_weights)

    def _await(self, grid: Grid) -> None:
        """Every partner, if they come within ``wait_all_s``; else at least ``min_partners``."""
        everyone = len(self.settings.workspace.partners)
        try:
            await_partners(grid, everyone, self.settings.wait_all_s)
        except FedpathError:
            log.warning(
                "only %d of %d partners connected after %.0f s; waiting for %d",
                len(grid.get_node_ids()),
                everyone,
                self.settings.wait_all_s,
                self.settings.min_partners,
                extra={"event": "partners_missing"},
            )
            await_partners(grid, self.settings.min_partners, float("inf"))
        self._status(connected_nodes=sorted(grid.get_node_ids()))

    # --------------------------------------------------------------------------- training
    def _train(self, grid: Grid, context: Context, start: Checkpoint) -> Checkpoint:
        sizing = self._size_pairs(grid, context)
        # Flower waits for ``min_partners`` to be connected before round 1.
        strategy = federation_strategy(
            self.config,
            start.weights,
            self.settings.min_partners,
            self.scale,
            None if sizing is None else sizing.agreed_cells,
        )
        restore_strategy_state(strategy, start.strategy_state)
        meter = ShiftedMeter(start.round)
        ids = registered_nodes(self.settings.state)
        known = {ids[p.name]: p.index for p in self.settings.workspace.partners if p.name in ids}
        n_partners = len(self.settings.workspace.partners)
        sampled = sampled_partners(n_partners, self.config.fraction_fit)
        tracked: Strategy = strategy
        if self.config.privacy.enabled:
            self.privacy = PrivacyReport(self.config.privacy, sampled / n_partners)
            # every round checkpointed before a resume released one aggregate
            tracked = PrivacyTracker(strategy, self.privacy, released=start.round)
        recorder = RoundRecorder(tracked, meter=meter, known_nodes=known)
        latest = [start]

        def round_done(server_round: int, arrays: list[np.ndarray]) -> None:
            record = next(r for r in recorder.rounds() if r.round == server_round)
            latest[0] = self._commit(latest[0], record, arrays, strategy, grid)

        base = build_workflow(
            self.config.secagg,
            # Under DP every partner reports weight 1 (its size is not private): an unweighted mean
            max_weight=1.0 if self.config.privacy.enabled else self.config.secagg.max_weight,
            sampled=sampled,
            count_scale=self.scale,
        )
        workflow = DefaultWorkflow(
            fit_workflow=base.fit_workflow,
            evaluate_workflow=CheckpointEachRound(base.evaluate_workflow, start.round, round_done),
        )
        self._status(state="training")
        run_rounds(
            meter.wrap(grid),
            context,
            ResumedRounds(recorder, start.round),
            workflow,
            start.remaining,
        )
        if latest[0].round != start.rounds:
            raise FedpathError(
                f"campaign {start.campaign} must complete round {start.rounds}, got to round "
                f"{latest[0].round}; see the rounds' failures above"
            )
        return latest[0]

    def _size_pairs(self, grid: Grid, context: Context) -> PairSizeRound | None:
        """Under ``pair_cells: auto``, the pair sketch's size from a secure sum of the connected
        partners' distinct pairs (as in a simulation); None for other models. Every connected
        partner is summed, so the bound covers whichever of them the count round samples; a
        partner joining after this step could overflow it, and the sum would then refuse to
        decode rather than return wrong counts (``fedpath.federation.pair_sketch``)."""
        if not self.spec.sized_by_run:
            return None
        self._status(state="sizing the pair sketch")
        connected = len(grid.get_node_ids())
        sizing = PairSizeRound(connected, *sum_workflow(self.config.secagg, connected))
        sizing(grid, context)
        log.info(
            "pair sketch: %d cells for %d summed distinct pairs of %d partners",
            sizing.agreed_cells(),
            sizing.pairs,
            connected,
            extra={"event": "pair_sketch_sized", "cells": sizing.cells, "pairs": sizing.pairs},
        )
        return sizing

    def _commit(
        self,
        previous: Checkpoint,
        record: RoundRecord,
        arrays: list[np.ndarray],
        strategy: Strategy,
        grid: Grid,
    ) -> Checkpoint:
        """Register the round's model, then checkpoint: the checkpoint is the commit point."""
        if not record.participants:
            raise FedpathError(
                f"round {record.round} must aggregate at least one update, got none "
                f"({record.failures} failures; under SecAgg+, too few partners answered a stage "
                "within secagg.timeout); the run stops before checkpointing it, and the "
                "coordinator's next run repeats it"
            )
        model = self.spec.build()
        model.set_weights(self.spec.from_arrays(arrays))
        parent = self.registry.find(previous.campaign, previous.round)
        card = self.registry.register(
            model,
            campaign=previous.campaign,
            round=record.round,
            config_hash=self.settings.config_hash,
            parent=parent.version if parent else self._parent_of_first_round(),
            metrics=record.metrics,
        )
        entry = {**asdict(record), "version": card.version}
        if self.privacy is not None:
            entry["privacy"] = self._privacy_of(record.round)
        records = [*previous.records, entry]
        checkpoint = Checkpoint(
            campaign=previous.campaign,
            round=record.round,
            rounds=previous.rounds,
            weights=arrays,
            strategy_state=strategy_state(strategy),
            records=records,
            config_hash=self.settings.config_hash,
        )
        self.checkpoints.save(checkpoint)
        log.info(
            "round %d completed: %d partners, %d dropped, %.1f s; version %d",
            record.round,
            len(record.participants),
            record.dropped,
            record.round_seconds,
            card.version,
            extra={
                "event": "round_completed",
                "round": record.round,
                "participants": record.participants,
                "dropped_partners": record.dropped_partners,
                "seconds": record.round_seconds,
                "version": card.version,
            },
        )
        self._status(
            completed_rounds=record.round,
            records=records,
            connected_nodes=sorted(grid.get_node_ids()),
            **self._epsilon(records),
        )
        return checkpoint

    def _privacy_of(self, server_round: int) -> dict[str, Any]:
        """Round ``server_round``'s privacy, partners by name: ε so far (cumulative over the
        campaign) and who refused for lack of budget."""
        assert self.privacy is not None
        found = [r for r in self.privacy.rounds if r.round == server_round]
        spent = found[-1] if found else PrivacyRound(round=server_round)
        names = {p.index: p.name for p in self.settings.workspace.partners}
        return {
            "session_epsilon": {names[i]: e for i, e in sorted(spent.session_epsilon.items())},
            "partner_epsilon": spent.partner_epsilon,
            "refused": [names[i] for i in spent.refused],
        }

    def _epsilon(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """``epsilon_by_partner``: each partner's latest ε of the campaign, by name (empty
        without DP). Session-level ε is the partner's own (what it charged its ledger); under
        partner-level DP alone every partner has the aggregate's ε. ``privacy_delta``: their δ."""
        settings = self.config.privacy
        if not settings.enabled:
            return {}
        epsilon: dict[str, float] = {}
        for entry in records:
            spent = entry.get("privacy") or {}
            if settings.session is not None:
                epsilon.update(spent.get("session_epsilon", {}))
            elif spent.get("partner_epsilon") is not None:
                partners = self.settings.workspace.partners
                epsilon = {p.name: spent["partner_epsilon"] for p in partners}
        return {"epsilon_by_partner": epsilon, "privacy_delta": settings.delta}

    def _parent_of_first_round(self) -> int | None:
        promoted = self.registry.promoted()
        return promoted.version if promoted and self.settings.warm_start else None

    # ------------------------------------------------------- calibration, gate, publication
    def _calibrate(self, grid: Grid, context: Context, checkpoint: Checkpoint) -> None:
        """Fit the campaign's model's temperatures and review cutoffs on the partners' valid
        cases (secure sums only) and register it again with them, under the same version.
        Skipped when off, under differential privacy (its noise does not cover these sums),
        and when the registered model already carries a calibration (a resumed campaign)."""
        candidate = self.registry.find(checkpoint.campaign, checkpoint.round)
        if not self.config.calibration or self.config.privacy.enabled or candidate is None:
            return
        model = self.registry.load(candidate.version)
        if model.calibration is not None:
            return
        self._status(state="calibrating")
        scale, workflow = sum_workflow(self.config.secagg, len(self.settings.workspace.partners))
        step = CalibrationRound(
            self.settings.min_partners, scale, workflow, self.config.review_threshold
        )
        step(grid, context, checkpoint.weights)
        if step.result is None:
            raise FedpathError(
                f"the calibration of campaign {checkpoint.campaign}'s model must complete, got "
                "no result; see the partners' errors above"
            )
        model.calibration = step.result.calibration
        self.registry.register(
            model,
            campaign=candidate.campaign,
            round=candidate.round,
            config_hash=candidate.config_hash,
            parent=candidate.parent,
            metrics=candidate.metrics,
        )
        log.info(
            "calibrated version %d: temperatures %s, cutoffs %s",
            candidate.version,
            model.calibration.temperatures,
            model.calibration.cutoffs,
            extra={"event": "calibrated", **model.calibration.to_dict()},
        )

    def _gate(
        self, grid: Grid, context: Context, checkpoint: Checkpoint
    ) -> tuple[int | None, dict[str, Any]]:
        """Score the campaign's model against the promoted one (the campaign's starting weights
        when none is); promote it if it wins. Returns the version to serve, if any."""
        candidate = self.registry.find(checkpoint.campaign, checkpoint.round)
        if candidate is None:
            raise FedpathError(
                f"campaign {checkpoint.campaign} must have a registered model for round "
                f"{checkpoint.round}, got none"
            )
        champion = self.registry.promoted()
        champion_arrays = (
            self.spec.to_arrays(self.registry.load(champion.version).get_weights())
            if champion
            else self.spec.to_arrays(self.spec.initial_weights)
        )
        gate = GateRound(self.config.gate, champion_arrays, self.settings.min_partners)
        gate(grid, context, checkpoint.weights)
        if gate.result is None:
            raise FedpathError("the gate round must score both models, got no decision")
        decision = {
            **gate.result.row(),
            "champion_version": champion.version if champion else None,
            "candidate_version": candidate.version,
        }
        log.info(
            "gate: candidate v%d %s %.4f vs champion %.4f: %s",
            candidate.version,
            gate.result.metric,
            gate.result.candidate,
            gate.result.champion,
            "promoted" if gate.result.promoted else "kept the champion",
            extra={"event": "gate", **decision},
        )
        if gate.result.promoted:
            self.registry.promote(candidate.version, decision)
            return candidate.version, decision
        if champion is None:
            return None, decision
        return champion.version, champion.decision

    def _publish(
        self, grid: Grid, context: Context, version: int, decision: dict[str, Any]
    ) -> None:
        card = self.registry.get(version)
        model = self.registry.load(version)
        record = publish(
            grid,
            context,
            card=card,
            decision=decision,
            arrays=self.spec.to_arrays(model.get_weights()),
            min_partners=self.settings.min_partners,
            split=self.config.gate.split,
            calibration=model.calibration,
        )
        reason = "promoted by this campaign" if decision.get("promoted") else "kept by the gate"
        self._status(
            promoted={
                "version": version,
                "reason": reason,
                "published_to": sorted(record.partner_metrics),
                "metrics": record.metrics,
                "decision": decision,
            }
        )
        log.info(
            "published version %d to partners %s",
            version,
            sorted(record.partner_metrics),
            extra={"event": "published", "version": version},
        )

    def _status(self, **changes: Any) -> None:
        unknown = self.partner_grid.unknown if self.partner_grid else []
        self.status.update(campaign=self.settings.campaign, unknown_nodes=unknown, **changes)
        write_status(self.settings.state / CAMPAIGN, self.status)
