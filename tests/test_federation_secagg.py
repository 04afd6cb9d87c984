"""Real Flower simulations (Ray, 3 partners) on the REES46 sample: SecAgg+ end to end.

Each test starts a simulation (15-45 s on 2 cores): they are few, and each checks several things.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pytest
import torch
from flwr.common import (
    FitRes,
    Message,
    MessageType,
    Parameters,
    Scalar,
    bytes_to_ndarray,
    parameters_to_ndarrays,
)
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.server import ServerApp
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.simulation import run_simulation

from fedpath.clients.app import build_client_app
from fedpath.clients.client import ClientSettings, PartnerClient
from fedpath.clients.store import load_partner, save_partner
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Partner, SplitDataset
from fedpath.data.loader import load_events
from fedpath.data.protocol import ProtocolConfig, apply_protocol
from fedpath.evaluate import evaluate
from fedpath.federation.config import FederationConfig, SecAggSettings
from fedpath.federation.keys import LOCAL_EPOCHS, SERVER_ROUND
from fedpath.federation.pair_sketch import FIELDS, cells_for
from fedpath.federation.spec import ModelSpec
from fedpath.models.registry import build_model
from fedpath.server.app import ServerOutcome, await_partners, run_rounds
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.strategies.factory import StrategyWiring
from fedpath.strategies.recorder import RoundRecorder
from fedpath.strategies.workflow import build_workflow

BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}}


@pytest.fixture(scope="module")
def rees46(shared_data: Path) -> SplitDataset:
    path = shared_data / "rees46-multicategory-sample" / "2019-Oct-head.csv"
    return apply_protocol(load_events(path).events, ProtocolConfig())


def _natural_partners(split: SplitDataset) -> list:
    return partition(split, PartitionConfig(scheme="natural", n_partners=3, by="category"))


@pytest.mark.parametrize(
    ("model", "secagg", "pair_cells"),
    [
        # auto: 232² = 53,824 table entries > 4 · 3,072, the smallest sketch: sized by the data
        ("markov", True, None),
        # 232² = 53,824 table entries > 4 · 12,000 sketch values: the table travels as a sketch
        ("markov", True, 12_000),
        # secagg=off only swaps Flower's plain fit step in; slow-marked to keep the suite short
        pytest.param("cooccurrence", False, None, marks=pytest.mark.slow),
    ],
    ids=["secagg-auto", "secagg-sketch", "plain"],
)
def test_count_model_federated_equals_centralized_bit_for_bit(rees46, model, secagg, pair_cells):
    # Prepare
    partners = _natural_partners(rees46)
    params = {} if pair_cells is None else {"pair_cells": pair_cells}
    config = FederationConfig(
        model=model,
        model_params=params,
        strategy="sum",
        rounds=2,
        secagg=SecAggSettings(enabled=secagg, timeout=120),
    )
    spec = ModelSpec(model, rees46.n_items, params)
    assert spec.sized_by_run == (pair_cells is None)
    central = build_model(model, n_items=rees46.n_items)
    central.fit(expand_prefixes(rees46.train))
    # Execute
    result = run_federation(rees46, partners, config)
    # Assert: the same arrays, the same dtypes, every count equal
    expected = central.get_weights()
    assert sorted(result.weights) == sorted(expected)
    for name, array in expected.items():
        assert result.weights[name].dtype == array.dtype
        np.testing.assert_array_equal(result.weights[name], array)
    # Every round: all three partners sampled and summed, nobody dropped
    assert [r.round for r in result.rounds] == [1, 2]
    for record in result.rounds:
        assert (record.sampled, record.participants, record.dropped) == (3, [0, 1, 2], 0)
        assert record.failures == 0
    # Pooled federated Recall@20 over the partners' valid cases = the global model on all of them
    global_valid = evaluate(central, expand_prefixes(rees46.valid))
    assert result.rounds[-1].metrics["recall@20"] == pytest.approx(global_valid["recall@20"])
    assert result.rounds[-1].loss == pytest.approx(1 - global_valid["recall@20"])
    if spec.sized_by_run:  # one secure sum of the partners' distinct pairs sized the sketch
        own = [_distinct_pairs(model, p.data, config.max_len) for p in partners]
        assert result.pair_size.pairs == sum(own) >= central.pair_counts().nnz
        assert result.pair_size.cells == cells_for(sum(own))
        # every partner sent 4 · cells numbers, not 4 · 2**22: all three partners' uploads
        # (sketch, counts, SecAgg+ keys and evaluation) stay under 1% of one fixed-size sketch
        assert 0 < result.rounds[0].bytes_up < FIELDS * 2**22 * 8 / 100


def _distinct_pairs(model: str, data: SplitDataset, max_len: int) -> int:
    """What a partner holding ``data`` sends the size sum: its train cases' distinct pairs."""
    fitted = build_model(model, n_items=data.n_items)
    return fitted.fit(expand_prefixes(data.train, max_len=max_len)).pair_counts().nnz


def test_partners_holding_the_same_pairs_overcount_the_bound_and_still_decode_exactly(rees46):
    # Prepare: three partners with the same log, so the size sum counts every pair three times
    # (the bound's worst over-count); the union is that log counted three times
    one = _natural_partners(rees46)[0]
    copies = [Partner(index=i, name=f"copy-{i}", data=one.data) for i in range(3)]
    config = FederationConfig(
        model="cooccurrence",
        strategy="sum",
        rounds=1,
        calibration=False,
        secagg=SecAggSettings(enabled=True, timeout=120),
    )
    alone = build_model("cooccurrence", n_items=rees46.n_items)
    alone.fit(expand_prefixes(one.data.train, max_len=config.max_len))

    # Execute
    result = run_federation(rees46, copies, config)

    # Assert: the bound is three times the union's pairs, and the sketch decodes to 3 x counts
    assert result.pair_size.pairs == 3 * alone.pair_counts().nnz
    for name, array in alone.get_weights().items():
        expected = array if name.endswith(("indptr", "indices")) else 3 * array
        np.testing.assert_array_equal(result.weights[name], expected, err_msg=name)


class _GridSpy:
    """Forwards to the real Grid and keeps every reply the server received."""

    def __init__(self, grid) -> None:
        self._grid = grid
        self.replies: list[Message] = []

    def __getattr__(self, name: str):
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *, timeout=None):
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self.replies.extend(replies)
        return replies


class _FedAvgSpy(FedAvg):
    """Flower's FedAvg, keeping the updates ``aggregate_fit`` was handed."""

    seen: list[list[np.ndarray]]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list,
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.seen = [parameters_to_ndarrays(res.parameters) for _, res in results]
        return super().aggregate_fit(server_round, results, failures)


def test_secagg_server_sees_only_masked_vectors_and_their_weighted_mean(rees46):
    # Prepare: a small GRU4Rec, 3 natural partners, one round under SecAgg+
    spec = ModelSpec(
        "gru4rec", rees46.n_items, {"embedding_size": 8, "hidden_size": 8, "batch_size": 64}
    )
    secagg = SecAggSettings(timeout=120)
    partners = _natural_partners(rees46)
    fit_config = {SERVER_ROUND: 1, LOCAL_EPOCHS: 1}
    initial = spec.to_arrays(spec.initial_weights)
    strategy = _FedAvgSpy(
        **StrategyWiring(
            n_partners=3, initial_weights=initial, on_fit_config_fn=lambda _: fit_config
        ).flower_args()
    )
    recorder = RoundRecorder(strategy)
    outcome = ServerOutcome()
    spies: list[_GridSpy] = []
    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        spies.append(_GridSpy(grid))
        await_partners(grid, 3, timeout=120)
        outcome.weights = run_rounds(spies[0], context, recorder, workflow, rounds=1)

    with TemporaryDirectory() as folder:
        for p in partners:
            cases = {n: expand_prefixes(getattr(p.data, n)) for n in ("train", "valid", "test")}
            save_partner(Path(folder), p.index, cases)
        sizes = [len(load_partner(Path(folder), p.index)["train"]) for p in partners]
        workflow = build_workflow(secagg, max_weight=max(sizes), sampled=len(partners))
        settings = ClientSettings(model=spec, data_dir=Path(folder))
        # Execute
        run_simulation(
            server_app=app,
            client_app=build_client_app(settings, secagg=True),
            num_supernodes=3,
            backend_config=BACKEND,
        )
        # Each partner's true update, recomputed here exactly as its process computed it
        threads = torch.get_num_threads()
        torch.set_num_threads(settings.threads)
        try:
            true_updates = [
                PartnerClient(p.index, load_partner(Path(folder), p.index), settings).fit(
                    initial, fit_config
                )[0]
                for p in partners
            ]
        finally:
            torch.set_num_threads(threads)

    # Assert: what reached the strategy is N copies of one vector, not the partners' updates
    assert len(strategy.seen) == 3
    for copy in strategy.seen[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(copy, strategy.seen[0], strict=True))
    aggregate = strategy.seen[0]
    for update in true_updates:
        assert not all(np.allclose(a, b) for a, b in zip(aggregate, update, strict=True))

    # ... and that vector is the weighted mean, within the quantization error of SecAgg+:
    # each partner's value is rounded to a step of 2c/T once, and the sum is divided by
    # sum(q_i) / T ~= sum(w_i) / max_weight; the weights themselves are rounded to 1/T.
    weights = np.array(sizes, dtype=np.float64)
    step = 2 * secagg.clipping_range / secagg.quantization_range
    share = weights.sum() / max(sizes)
    largest = max(float(np.abs(a).max()) for u in true_updates for a in u)
    tolerance = 3 * step / share + 3 * largest / (secagg.quantization_range * share) + 1e-6
    for index, layer in enumerate(aggregate):
        mean = sum(
            w * u[index].astype(np.float64) for w, u in zip(weights, true_updates, strict=True)
        )
        np.testing.assert_allclose(layer, mean / weights.sum(), rtol=0, atol=tolerance)

    # The server only ever held masked vectors: in [0, 2^32), not in the quantized range [0, T]
    replies = spies[0].replies
    masked = [
        r.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
        for r in replies
        if r.has_content()
        and RECORD_KEY_CONFIGS in r.content.config_records
        and Key.MASKED_PARAMETERS in r.content.config_records[RECORD_KEY_CONFIGS]
    ]
    assert len(masked) == 3
    for vector in masked:
        flat = np.concatenate([bytes_to_ndarray(b).ravel() for b in vector])
        assert (flat > secagg.quantization_range).mean() > 0.99
    # ... and no training reply carried arrays in the clear
    train_replies = [r for r in replies if r.metadata.message_type == MessageType.TRAIN]
    assert train_replies
    for reply in train_replies:
        assert all(len(record) == 0 for record in reply.content.array_records.values())
    # The record of the round
    (record,) = recorder.rounds()
    assert (record.sampled, record.participants, record.failures) == (3, [0, 1, 2], 0)
    assert outcome.weights is not None
