"""One real Flower simulation under SecAgg+ (4 partners, one drops mid-round), then the funnel
and the gate rounds on the same partners.

A simulation costs tens of seconds on 2 cores, so this one run serves every assertion below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from federation_paths import TINY_GRU, walk_split

from fedpath.clients.client import ClientSettings, PartnerClient
from fedpath.clients.faults import FaultPlan, plan_dropouts
from fedpath.data.cases import expand_prefixes
from fedpath.evaluate import evaluate
from fedpath.federation.config import (
    FaultSettings,
    FederationConfig,
    FunnelSettings,
    GateSettings,
    SecAggSettings,
)
from fedpath.federation.spec import ModelSpec
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition

LOCAL_EPOCHS = 2
CONFIG = FederationConfig(
    model="gru4rec",
    model_params=TINY_GRU,
    rounds=1,
    local_epochs=LOCAL_EPOCHS,
    secagg=SecAggSettings(timeout=120),
    funnel=FunnelSettings(enabled=True),
    gate=GateSettings(enabled=True, metric="recall@20", split="test"),
    faults=FaultSettings(dropout_fraction=0.25),
)


@pytest.fixture(scope="module")
def run():
    split = walk_split()
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=4))
    live = []  # what the callback saw, at the moment it was called
    result = run_federation(
        split,
        partners,
        CONFIG,
        on_round=lambda r: live.append((r.round, r.metrics.get("recall@20"), r.bytes_up)),
    )
    return split, partners, result, live


def test_round_completes_without_the_dropped_partner_and_names_it(run):
    # Prepare: the partner the plan fails in round 1
    _, _, result, _ = run
    (dropped,) = FaultPlan(dropouts=plan_dropouts(0.25, 4, 1, CONFIG.seed)).dropped_in(1)
    # Assert: the three survivors reached the threshold (3 of 4 shares) and were aggregated
    (record,) = result.rounds
    assert record.sampled == 4
    assert record.participants == sorted({0, 1, 2, 3} - {dropped})
    assert (record.dropped, record.dropped_partners) == (1, [dropped])
    assert record.failures >= 1


def test_aggregate_under_dropout_is_the_survivors_weighted_mean(run, tmp_path: Path):
    # Prepare: each survivor's true update, recomputed exactly as its process computed it
    _, partners, result, _ = run
    (record,) = result.rounds
    spec = ModelSpec("gru4rec", partners[0].data.n_items, TINY_GRU, CONFIG.seed)
    initial = spec.to_arrays(spec.initial_weights)
    settings = ClientSettings(model=spec, data_dir=tmp_path)
    fit_config = {"server-round": 1, "local-epochs": LOCAL_EPOCHS}
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        updates = {}
        for p in partners:
            cases = {n: expand_prefixes(getattr(p.data, n)) for n in ("train", "valid", "test")}
            updates[p.index] = PartnerClient(p.index, cases, settings).fit(initial, fit_config)
    finally:
        torch.set_num_threads(threads)
    # Execute: the weighted mean of the survivors only
    survivors = [updates[i] for i in record.participants]
    weights = np.array([w for _, w, _ in survivors], dtype=np.float64)
    mean = [
        sum(w * u[0][k].astype(np.float64) for w, u in zip(weights, survivors, strict=True))
        / weights.sum()
        for k in range(len(initial))
    ]
    # Assert: equal within SecAgg+'s quantization error (see test_federation_secagg), with
    # max_weight the largest partner's train cases, the dropped one included
    max_weight = max(w for _, w, _ in updates.values())
    share = weights.sum() / max_weight
    step = 2 * CONFIG.secagg.clipping_range / CONFIG.secagg.quantization_range
    largest = max(float(np.abs(a).max()) for _, (u, _, _) in updates.items() for a in u)
    tolerance = 3 * step / share + 3 * largest / (CONFIG.secagg.quantization_range * share) + 1e-6
    for name, expected in zip(spec.names, mean, strict=True):
        np.testing.assert_allclose(result.weights[name], expected, rtol=0, atol=tolerance)


def test_secure_funnel_equals_the_funnel_of_the_union_counted_by_hand(run):
    # Prepare: every partner's sessions, counted here stage by stage and channel by channel
    # (the log's channels are app, web and unknown)
    split, _, result, _ = run
    sessions = [*split.train, *split.valid, *split.test]
    expected = {"all": [0, 0, 0], "app": [0, 0, 0], "web": [0, 0, 0]}
    for session in sessions:
        furthest = int(session.actions.max())
        for stage in range(3):
            if furthest >= stage:
                expected["all"][stage] += 1
                if session.channel is not None:
                    expected[session.channel][stage] += 1
    # Assert: the server's secure sum over all four partners (none drops in this round)
    assert result.funnel is not None
    assert result.funnel.partners == [0, 1, 2, 3]
    got = {name: list(counts) for name, counts in result.funnel.funnel.segments.items()}
    assert got == expected
    assert expected["all"][0] == len(sessions)


def test_gate_scores_both_models_on_the_partners_test_data_and_promotes_the_trained_one(run):
    # Prepare: the champion is the model the run started from
    split, _, result, _ = run
    spec = ModelSpec("gru4rec", split.n_items, TINY_GRU, CONFIG.seed)
    test = expand_prefixes(split.test)
    # Assert: the pooled federated scores are those of the union of the partners' test data
    gate = result.gate
    assert gate is not None
    assert gate.champion == pytest.approx(evaluate(spec.build(), test)["recall@20"])
    assert gate.candidate == pytest.approx(evaluate(result.model, test)["recall@20"])
    assert gate.candidate > gate.champion
    assert gate.promoted
    assert gate.row()["promoted"] is True


def test_bytes_and_live_callback_describe_the_round(run):
    # Prepare
    split, _, result, live = run
    spec = ModelSpec("gru4rec", split.n_items, TINY_GRU, CONFIG.seed)
    model_bytes = sum(a.nbytes for a in spec.initial_weights.values())  # float32
    (record,) = result.rounds
    # Assert: the server broadcast the model to 4 partners to train and 4 to evaluate; the
    # 3 survivors uploaded masked vectors of at least the model's size each
    assert record.bytes_down >= 8 * model_bytes
    assert record.bytes_up >= 3 * model_bytes
    # ... and the callback saw the round once, with its live metric and bytes already in
    assert live == [(1, record.metrics["recall@20"], record.bytes_up)]
