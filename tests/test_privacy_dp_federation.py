"""Differential privacy in real Flower simulations (Ray): a partner over its budget refuses and
the run goes on without it; partner-level noise under SecAgg+ is added by the partners, after
clipping, at the calibrated scale; noisy counts pass the exact secure sum.

Each test is one simulation of 2-3 partners on the federation tests' tiny paths (about a
minute on 2 busy cores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from federation_paths import TINY_GRU, paths, walk_split  # pytest puts tests/ on sys.path

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Partner, SplitDataset
from fedpath.errors import ConfigError
from fedpath.federation.config import FederationConfig, SecAggSettings
from fedpath.federation.spec import ModelSpec
from fedpath.models.registry import build_model
from fedpath.privacy.dp.accountant import epsilon
from fedpath.privacy.dp.client import ledger_path, session_epsilon
from fedpath.privacy.dp.config import PartnerDP, PrivacySettings, SessionDP
from fedpath.privacy.dp.counts import cap_session_cases, count_sensitivity
from fedpath.privacy.dp.ledger import PrivacyLedger
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition

DELTA = 1e-5


def test_a_partner_over_budget_refuses_and_the_run_goes_on_without_it(tmp_path: Path):
    # Prepare: partner 1 has already spent all but a sliver of its budget in an earlier run
    split = walk_split()
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=2))
    session = SessionDP(
        noise_multiplier=1.0, sample_rate=0.25, budget_epsilon=50.0, ledger_dir=str(tmp_path)
    )
    earlier = PrivacyLedger(ledger_path(session, 1), session.budget_epsilon, session.budget_delta)
    earlier.charge("an-earlier-run", 49.9, DELTA, note="spent before this test")
    config = FederationConfig(
        model="gru4rec",
        model_params=TINY_GRU,
        rounds=2,
        secagg=SecAggSettings(enabled=False),
        privacy=PrivacySettings(delta=DELTA, session=session),
    )
    # Execute
    result = run_federation(split, partners, config)
    # Assert: every round trained on partner 0 alone and shows partner 1's refusal
    assert [r.participants for r in result.rounds] == [[0], [0]]
    assert all(r.failures == 1 for r in result.rounds)
    report = result.privacy
    assert [r.refused for r in report.rounds] == [[1], [1]]
    two_rounds = session_epsilon(session, epochs=2, delta=DELTA)
    assert report.session_epsilon == pytest.approx(two_rounds)
    assert report.summary()["refusals"] == 2
    # ... and the ledgers: partner 0 charged exactly the run's ε, partner 1 nothing more
    mine = PrivacyLedger(ledger_path(session, 0), 50.0, 1e-3)
    assert mine.spent() == pytest.approx(two_rounds)
    assert PrivacyLedger(ledger_path(session, 1), 50.0, 1e-3).spent() == pytest.approx(49.9)


def _uneven_partners() -> tuple[SplitDataset, list[Partner]]:
    """Three partners of 160, 60 and 20 train paths: a weighted mean would show in the noise."""
    split = walk_split()
    sizes, partners, begin = (160, 60, 20), [], 0
    for index, size in enumerate(sizes):
        data = SplitDataset(
            train=split.train[begin : begin + size],
            valid=split.valid[index::3],
            test=split.test[index::3],
            vocab=split.vocab,
        )
        partners.append(Partner(index=index, name=f"p{index}", data=data))
        begin += size
    return split, partners


def test_partner_level_noise_under_secagg_is_added_by_partners_after_clipping():
    # Prepare: noise far above the clipped update (norm <= C), one round, unequal partners
    split, partners = _uneven_partners()
    sigma, clip, sampled = 10.0, 0.01, 3
    config = FederationConfig(
        model="gru4rec",
        model_params=TINY_GRU,
        rounds=1,
        secagg=SecAggSettings(enabled=True, timeout=120),
        privacy=PrivacySettings(
            delta=DELTA, partner=PartnerDP(noise_multiplier=sigma, clip_norm=clip)
        ),
    )
    start = ModelSpec("gru4rec", split.n_items, TINY_GRU, config.seed).initial_weights
    # Execute
    result = run_federation(split, partners, config)
    # Assert: the unweighted mean of 3 clipped updates, each with its share N(0, (σC)²/3),
    # carries N(0, (σC/3)²) per weight; clipping after the noise would have left norm <= C,
    # and a mean weighted by 160/60/20 paths would carry 25% more
    change = np.concatenate([(result.weights[k] - start[k]).ravel() for k in start])
    assert change.size > 3000
    assert change.std() == pytest.approx(sigma * clip / sampled, rel=0.06)
    assert np.linalg.norm(change) > 10 * clip
    assert result.privacy.partner_epsilon == pytest.approx(
        epsilon(noise_multiplier=sigma, sample_rate=1.0, steps=1, delta=DELTA)
    )


def test_noisy_counts_pass_the_exact_secure_sum_with_the_distributed_noise(tmp_path: Path):
    # Prepare: Markov counts of 3 partners under SecAgg+, each adding N(0, (σΔ)²/3)
    split = SplitDataset(
        train=paths(240, 1),
        valid=paths(30, 2),
        test=paths(30, 3),
        vocab=[f"item-{i}" for i in range(60)],
    )
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=3))
    session = SessionDP(
        noise_multiplier=0.5, max_session_cases=4, budget_epsilon=50.0, ledger_dir=str(tmp_path)
    )
    config = FederationConfig(
        model="markov",
        strategy="sum",
        rounds=1,
        secagg=SecAggSettings(enabled=True, timeout=120),
        privacy=PrivacySettings(delta=DELTA, session=session),
    )
    central = build_model("markov", n_items=split.n_items)
    central.fit(cap_session_cases(expand_prefixes(split.train), session.max_session_cases))
    spec = ModelSpec("markov", n_items=split.n_items)  # 60 items: the dense wire, noised
    exact = dict(zip(spec.names, spec.to_arrays(central.get_weights()), strict=True))
    # Execute
    result = run_federation(split, partners, config)
    # Assert: integers clipped at 0; where the true count is 0 the sum holds max(0, noise), whose
    # mean square is s²/2 with s² = (σΔ)² plus the three partners' rounding (3/12)
    noisy = dict(zip(spec.names, spec.to_arrays(result.weights), strict=True))
    assert all(np.issubdtype(a.dtype, np.integer) and (a >= 0).all() for a in noisy.values())
    zero = exact["transitions"] == 0
    s = np.sqrt(2 * (noisy["transitions"][zero].astype(float) ** 2).mean())
    sensitivity = count_sensitivity(sorted(exact), session.max_session_cases)
    assert s == pytest.approx(np.sqrt((0.5 * sensitivity) ** 2 + 3 / 12), rel=0.07)
    counted = exact["item_counts"] > 0
    assert abs((noisy["item_counts"] - exact["item_counts"])[counted].mean()) < 2.0
    assert result.privacy.session_epsilon == pytest.approx(
        epsilon(noise_multiplier=0.5, sample_rate=1.0, steps=1, delta=DELTA)
    )


def test_session_dp_refuses_a_pair_table_sent_as_a_sketch(tmp_path: Path):
    # Prepare: 60² = 3,600 table entries > 4 · 100 sketch values; noise needs every pair's entry
    split = SplitDataset(
        train=paths(40, 1), valid=paths(5, 2), test=paths(5, 3), vocab=[f"i{i}" for i in range(60)]
    )
    session = SessionDP(
        noise_multiplier=0.5, max_session_cases=4, budget_epsilon=50.0, ledger_dir=str(tmp_path)
    )
    config = FederationConfig(
        model="markov",
        model_params={"pair_cells": 100},
        strategy="sum",
        rounds=1,
        privacy=PrivacySettings(delta=DELTA, session=session),
    )
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=2))
    # Execute / Assert: refused before any partner starts
    with pytest.raises(ConfigError, match=r"pair_cells >= 900, got 100"):
        run_federation(split, partners, config)
