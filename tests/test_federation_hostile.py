"""Real Flower simulations (4 partners, SecAgg+ off) with one hostile partner.

Partner 0 sends its step scaled ten times. FedAvg's mean lets that one update dominate; the
coordinate-wise median does not. Robust rules must see each update, hence secagg=off. The
paths are learnt to Recall@20 = 1 in three rounds, so the damage is plain and repeatable.
Three simulations (clean, FedAvg attacked, median attacked) serve every assertion.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from federation_paths import TINY_GRU, walk_split

from fedpath.data.cases import expand_prefixes
from fedpath.evaluate import evaluate
from fedpath.federation.config import FaultSettings, FederationConfig, GateSettings, SecAggSettings
from fedpath.federation.spec import ModelSpec
from fedpath.models.weights_io import save_weights
from fedpath.simulations.federation import FederationResult, run_federation
from fedpath.simulations.partition import PartitionConfig, partition

ATTACK = FaultSettings(hostile_partners=(0,), attack="scale", attack_factor=10.0)
MAX_LOSS = 0.05  # the most a contained attack may cost, relative to the clean run


def _config(strategy: str, **overrides) -> FederationConfig:
    return FederationConfig(
        model="gru4rec",
        model_params=TINY_GRU,
        strategy=strategy,
        rounds=3,
        local_epochs=2,
        secagg=SecAggSettings(enabled=False),
        **overrides,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, FederationResult]:
    split = walk_split()
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=4))
    clean = run_federation(split, partners, _config("fedavg"))
    champion = save_weights(tmp_path_factory.mktemp("gate") / "clean.safetensors", clean.model)
    gate = GateSettings(enabled=True, metric="recall@20", split="test", champion=str(champion))
    return {
        "clean": clean,
        "fedavg": run_federation(split, partners, _config("fedavg", faults=ATTACK, gate=gate)),
        "median": run_federation(split, partners, _config("fedmedian", faults=ATTACK)),
    }


def _test_recall(result: FederationResult) -> float:
    return evaluate(result.model, expand_prefixes(walk_split().test))["recall@20"]


def test_median_contains_a_scaled_update_that_breaks_fedavg(runs):
    # Execute
    clean, fedavg, median = (_test_recall(runs[k]) for k in ("clean", "fedavg", "median"))
    # Assert: the clean run learnt the paths; the attack costs the median under 5%, FedAvg more
    assert clean > 0.9
    assert median >= (1 - MAX_LOSS) * clean
    assert fedavg < (1 - MAX_LOSS) * clean
    # Every partner, the hostile one included, took part in every round
    for result in runs.values():
        assert all(r.participants == [0, 1, 2, 3] for r in result.rounds)


def test_gate_keeps_the_clean_champion_over_the_poisoned_candidate(runs):
    # Prepare
    gate = runs["fedavg"].gate
    # Assert: both scored on the union of the partners' test data; the poisoned one is refused
    assert gate is not None
    assert gate.champion == pytest.approx(_test_recall(runs["clean"]))
    assert gate.candidate == pytest.approx(_test_recall(runs["fedavg"]))
    assert not gate.promoted


def test_plain_uploads_are_exactly_the_partners_serialized_arrays(runs):
    # Prepare: Flower ships each array as NumPy's .npy bytes; a partner uploads the model's
    # arrays (float32) once per round, and evaluation replies carry no array
    spec = ModelSpec("gru4rec", walk_split().n_items, TINY_GRU)
    npy_bytes = 0
    for array in spec.to_arrays(spec.initial_weights):
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        npy_bytes += len(buffer.getvalue())
    # Assert: up, 4 trained models; down, the global model to 4 trainers and 4 evaluators
    # (FedAvg's mean of float32 updates stays float32, so every copy has the same size)
    for record in runs["clean"].rounds:
        assert record.bytes_up == 4 * npy_bytes
        assert record.bytes_down == 8 * npy_bytes
