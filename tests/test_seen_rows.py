"""Item rows averaged over the partners that hold the item (strategies/seen_rows.py): the mean by
hand, the rows a partner holds, and a real SecAgg+ federation of partners with disjoint
catalogues, where the rows nobody holds stay as they were and plain FedAvg moves them."""

from __future__ import annotations

import numpy as np
import pytest
from federation_paths import TINY_GRU, paths  # pytest puts tests/ on sys.path

from fedpath.clients.client import held_rows
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Partner, SplitDataset
from fedpath.errors import ConfigError
from fedpath.federation.config import FederationConfig, SecAggSettings
from fedpath.federation.spec import ModelSpec
from fedpath.privacy.dp.config import PrivacySettings, SessionDP
from fedpath.simulations.federation import run_federation
from fedpath.strategies.seen_rows import ITEM_TABLE, mask_unseen_rows, seen_rows_mean
from fedpath.strategies.stack import seen_rows_table


def test_each_row_is_the_weighted_mean_of_the_partners_holding_it_worked_by_hand() -> None:
    # Prepare: a 3-row table (row 0 held by nobody), A (weight 1) holds row 1, B (weight 3)
    # holds rows 1 and 2; a second array is averaged as FedAvg does
    global_table = np.array([[9.0, 9.0], [0.0, 0.0], [0.0, 0.0]])
    a = mask_unseen_rows([np.array([5.0]), np.full((3, 2), 2.0)], 1, np.array([0, 1, 0], bool))
    b = mask_unseen_rows([np.array([1.0]), np.full((3, 2), 6.0)], 1, np.array([0, 1, 1], bool))

    # Execute
    mean = seen_rows_mean([(a, 1.0), (b, 3.0)], table=1, global_table=global_table)

    # Assert: the mask is dropped; row 0 keeps the global row; row 1 is (1·2 + 3·6) / 4 = 5;
    # row 2 is B's own 6 (FedAvg would give 3·6/4 = 4.5); the other array is (5 + 3) / 4 = 2
    assert len(mean) == 2
    assert mean[0].tolist() == [2.0]
    assert mean[1].tolist() == [[9.0, 9.0], [5.0, 5.0], [6.0, 6.0]]
    assert a[-1].tolist() == [0.0, 1.0, 0.0] and a[1][2].tolist() == [0.0, 0.0]


def test_a_partner_holds_the_rows_of_its_prefix_items_and_next_items() -> None:
    # Prepare: one path (item j is row j + 1)
    cases = expand_prefixes(paths(1, 0)[:1])
    items = {int(i) for i in paths(1, 0)[0].items}

    # Execute
    rows = held_rows(cases, n_items=60)

    # Assert
    assert set(np.flatnonzero(rows).tolist()) == {i + 1 for i in items}
    assert not rows[0]


def _disjoint_partners() -> tuple[SplitDataset, list[Partner]]:
    """Two partners on the 60-item walk with disjoint catalogues: A keeps the paths within items
    0-24, B those within 30-54."""
    vocab = [str(i) for i in range(60)]
    split = SplitDataset(paths(400, 1), paths(80, 2), paths(80, 3), vocab)

    def half(sessions, low):
        return [s for s in sessions if all(low <= i < low + 25 for i in s.items)]

    partners = [
        Partner(
            index=k,
            name=name,
            data=SplitDataset(
                train=half(split.train, low),
                valid=half(split.valid, low),
                test=half(split.test, low),
                vocab=split.vocab,
            ),
        )
        for k, (name, low) in enumerate([("a", 0), ("b", 30)])
    ]
    return split, partners


@pytest.mark.usefixtures("one_thread")
def test_rows_no_partner_holds_stay_put_under_secagg_and_fedavg_moves_them() -> None:
    # Prepare: items 25-29 and 55-59 are in no partner's train data (the halves keep 0-24, 30-54)
    split, partners = _disjoint_partners()
    assert all(len(p.data.train) >= 20 for p in partners)
    unheld = [i + 1 for i in (*range(25, 30), *range(55, 60))]  # table rows
    common = {
        "model": "gru4rec",
        "model_params": {**TINY_GRU, "item_negatives": 0},
        "rounds": 2,
        "calibration": False,
        "secagg": SecAggSettings(enabled=True, timeout=120),
    }
    start = ModelSpec("gru4rec", 60, common["model_params"]).initial_weights[ITEM_TABLE]

    # Execute
    seen = run_federation(split, partners, FederationConfig(**common, item_rows="seen"))
    plain = run_federation(split, partners, FederationConfig(**common))

    # Assert: rows nobody holds keep their initial values under "seen" (the full softmax pushed
    # them down at both partners, which plain FedAvg averaged in); the held rows moved; both
    # models learned the walk
    np.testing.assert_array_equal(seen.weights[ITEM_TABLE][unheld], start[unheld])
    assert np.abs(plain.weights[ITEM_TABLE][unheld] - start[unheld]).max() > 1e-3
    assert np.abs(seen.weights[ITEM_TABLE][1:26] - start[1:26]).max() > 1e-3
    assert seen.rounds[-1].metrics["recall@20"] > 0.5
    assert plain.rounds[-1].metrics["recall@20"] > 0.5


def test_seen_rows_is_refused_for_count_models_robust_rules_and_dp() -> None:
    spec = ModelSpec("gru4rec", 60, TINY_GRU)
    with pytest.raises(ConfigError, match="neural model and a mean-based strategy"):
        seen_rows_table(FederationConfig(model="markov", item_rows="seen"), ModelSpec("markov", 60))
    with pytest.raises(ConfigError, match="mean-based strategy, got model 'gru4rec' and strategy"):
        seen_rows_table(FederationConfig(model="gru4rec", strategy="krum", item_rows="seen"), spec)
    private = PrivacySettings(session=SessionDP())
    with pytest.raises(ConfigError, match="cannot run under differential privacy"):
        seen_rows_table(FederationConfig(model="gru4rec", item_rows="seen", privacy=private), spec)
    with pytest.raises(ConfigError, match="item_rows must be one of"):
        FederationConfig(model="gru4rec", item_rows="some")
    assert seen_rows_table(FederationConfig(model="gru4rec", item_rows="seen"), spec) == (
        spec.names.index(ITEM_TABLE)
    )
