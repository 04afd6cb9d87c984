"""The coordinator's durable state: model registry, checkpoints, resumed round numbering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAdam

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session
from fedpath.errors import DataFormatError
from fedpath.federation.registry import ModelRegistry
from fedpath.models.markov import MarkovChain
from fedpath.privacy.errors import DecryptionError
from fedpath.server.deployed.checkpoint import (
    Checkpoint,
    CheckpointStore,
)
from fedpath.strategies.resume import ResumedRounds, restore_strategy_state, strategy_state

KEY = bytes(range(32))


def counted(*paths: list[int]) -> MarkovChain:
    sessions = [
        Session(key=str(i), items=np.array(p), actions=np.zeros(len(p), np.int8), start=i)
        for i, p in enumerate(paths)
    ]
    return MarkovChain(n_items=8).fit(expand_prefixes(sessions, max_len=4))


def test_registry_numbers_versions_and_keeps_their_lineage(tmp_path: Path) -> None:
    # Prepare
    registry = ModelRegistry(tmp_path)

    # Execute
    first = registry.register(
        counted([0, 1]),
        campaign="c1",
        round=1,
        config_hash="h",
        parent=None,
        metrics={"recall@20": 0.5, "conversion_auc": float("nan")},
    )
    second = registry.register(
        counted([0, 2]), campaign="c1", round=2, config_hash="h", parent=first.version
    )

    # Assert
    assert [(v.version, v.round, v.parent) for v in registry.versions()] == [
        (1, 1, None),
        (2, 2, 1),
    ]
    assert first.metrics == {"recall@20": 0.5}  # NaN (no positives) is not a score
    assert registry.find("c1", 2) == second
    assert registry.find("c2", 1) is None


def test_registering_a_rerun_round_replaces_its_version(tmp_path: Path) -> None:
    # Prepare: round 2 registered, then the coordinator died before checkpointing it
    registry = ModelRegistry(tmp_path)
    registry.register(counted([0, 1]), campaign="c1", round=1, config_hash="h", parent=None)
    registry.register(counted([0, 1]), campaign="c1", round=2, config_hash="h", parent=1)

    # Execute: the rerun of round 2 registers again
    again = registry.register(counted([0, 3]), campaign="c1", round=2, config_hash="h", parent=1)

    # Assert
    assert again.version == 2
    assert [v.round for v in registry.versions()] == [1, 2]
    assert registry.load(2).pair_counts()[0, 3] == 1


def test_registry_refuses_a_model_file_that_is_not_the_registered_one(tmp_path: Path) -> None:
    # Prepare
    registry = ModelRegistry(tmp_path)
    registry.register(counted([0, 1]), campaign="c1", round=1, config_hash="h", parent=None)
    other = ModelRegistry(tmp_path / "other")
    other.register(counted([5, 6]), campaign="c1", round=1, config_hash="h", parent=None)
    (tmp_path / "v0001.model").write_bytes((tmp_path / "other" / "v0001.model").read_bytes())

    # Execute / Assert
    with pytest.raises(DataFormatError, match="sha256 must be"):
        registry.load(1)


def test_encrypted_registry_stores_no_plain_model(tmp_path: Path) -> None:
    # Prepare
    registry = ModelRegistry(tmp_path, key=KEY)
    model = counted([0, 1], [0, 1], [1, 2])

    # Execute
    registry.register(model, campaign="c1", round=1, config_hash="h", parent=None)
    stored = (tmp_path / "v0001.model").read_bytes()
    loaded = registry.load(1)

    # Assert
    assert b"transitions" not in stored and b"markov" not in stored
    np.testing.assert_array_equal(loaded.pair_counts().toarray(), model.pair_counts().toarray())
    with pytest.raises(DecryptionError):
        ModelRegistry(tmp_path, key=bytes(32)).load(1)


def test_promotion_is_recorded_with_its_decision(tmp_path: Path) -> None:
    # Prepare
    registry = ModelRegistry(tmp_path)
    for r in (1, 2):
        registry.register(counted([0, r]), campaign="c1", round=r, config_hash="h", parent=None)

    # Execute
    before = registry.promoted()
    registry.promote(1, {"promoted": True, "candidate": 0.3})
    registry.promote(2, {"promoted": True, "candidate": float("nan")})

    # Assert
    assert before is None
    promoted = registry.promoted()
    assert (promoted.version, promoted.decision) == (2, {"promoted": True, "candidate": None})
    assert len((tmp_path / "promotions.jsonl").read_text().splitlines()) == 2
    with pytest.raises(DataFormatError, match="not in the registry"):
        registry.promote(9, {})


@pytest.mark.parametrize("key", [None, KEY])
def test_checkpoint_round_trips_weights_state_and_records(tmp_path: Path, key) -> None:
    # Prepare
    store = CheckpointStore(tmp_path, key=key)
    checkpoint = Checkpoint(
        campaign="c7",
        round=2,
        rounds=5,
        weights=[np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7], dtype=np.int64)],
        strategy_state={"m_t": [np.full(3, 0.5)]},
        records=[{"round": 1, "participants": [0, 1]}, {"round": 2, "participants": [0]}],
        config_hash="abc",
    )

    # Execute
    empty = store.load()
    store.save(checkpoint)
    loaded = store.load()

    # Assert
    assert empty is None
    assert (loaded.campaign, loaded.round, loaded.rounds, loaded.remaining) == ("c7", 2, 5, 3)
    assert loaded.records == checkpoint.records and loaded.config_hash == "abc"
    for got, want in zip(loaded.weights, checkpoint.weights, strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    np.testing.assert_array_equal(loaded.strategy_state["m_t"][0], np.full(3, 0.5))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]  # nothing half-written


def test_fedadam_state_survives_a_checkpoint(tmp_path: Path) -> None:
    # Prepare: a FedAdam that has taken one step holds moments m_t, v_t
    start = [np.zeros(3)]
    adam = FedAdam(initial_parameters=ndarrays_to_parameters(start), eta=0.1, tau=1e-3)
    adam.m_t, adam.v_t = [np.array([0.1, 0.2, 0.3])], [np.array([0.01, 0.02, 0.03])]
    adam.current_weights = [np.array([1.0, 2.0, 3.0])]

    # Execute: checkpoint, then a fresh FedAdam restored from it
    CheckpointStore(tmp_path).save(
        Checkpoint("c1", 1, 3, adam.current_weights, strategy_state(adam))
    )
    loaded = CheckpointStore(tmp_path).load()
    fresh = FedAdam(initial_parameters=ndarrays_to_parameters(loaded.weights), eta=0.1, tau=1e-3)
    restore_strategy_state(fresh, loaded.strategy_state)

    # Assert
    assert sorted(loaded.strategy_state) == ["current_weights", "m_t", "v_t"]
    np.testing.assert_array_equal(fresh.m_t[0], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(fresh.v_t[0], [0.01, 0.02, 0.03])
    np.testing.assert_array_equal(fresh.current_weights[0], [1.0, 2.0, 3.0])


class _Rounds(FedAdam):
    """Records which round numbers the strategy is asked about."""

    def __init__(self) -> None:
        super().__init__(initial_parameters=ndarrays_to_parameters([np.zeros(1)]))
        self.seen: list[tuple[str, int]] = []

    def configure_fit(self, server_round, parameters, client_manager):
        self.seen.append(("fit", server_round))
        return []

    def configure_evaluate(self, server_round, parameters, client_manager):
        self.seen.append(("evaluate", server_round))
        return []

    def evaluate(self, server_round, parameters):
        self.seen.append(("central", server_round))


def test_resumed_rounds_continue_the_campaign_count() -> None:
    # Prepare: a campaign checkpointed after round 3 resumes; Flower counts 1, 2 again
    inner = _Rounds()
    resumed = ResumedRounds(inner, offset=3)
    parameters = ndarrays_to_parameters([np.zeros(1)])

    # Execute
    for local in (1, 2):
        resumed.configure_fit(local, parameters, None)
        resumed.evaluate(local, parameters)
        resumed.configure_evaluate(local, parameters, None)
    initial = parameters_to_ndarrays(resumed.initialize_parameters(None))

    # Assert
    assert inner.seen == [
        ("fit", 4), ("central", 4), ("evaluate", 4),
        ("fit", 5), ("central", 5), ("evaluate", 5),
    ]  # fmt: skip
    np.testing.assert_array_equal(initial[0], [0.0])
