"""The federation's parts without a simulation: secure-sum encoding, strategies, metrics, client."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from flwr.common import (
    Code,
    EvaluateRes,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.secure_aggregation.quantization import quantize
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Bulyan, FedAdam, FedAvg, FedProx, Krum

from fedpath.clients.client import ClientSettings, PartnerClient
from fedpath.clients.store import load_partner, save_partner
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session, SplitDataset
from fedpath.errors import ConfigError
from fedpath.federation.config import LOG_SHARES, FederationConfig
from fedpath.federation.keys import COUNT_SCALE, EVAL_SPLIT, LOCAL_EPOCHS, PARTNER, SERVER_ROUND
from fedpath.federation.spec import ModelSpec
from fedpath.models.registry import build_model
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.strategies import secure_sum
from fedpath.strategies.factory import STRATEGIES, StrategyWiring, build_strategy
from fedpath.strategies.metrics import pooled_eval_metrics
from fedpath.strategies.recorder import RoundRecorder
from fedpath.strategies.secure_sum import SecureSum
from fedpath.strategies.workflow import shares_of

REPO = Path(__file__).resolve().parents[1]


def _session(key: str, items: list[int], actions: list[int]) -> Session:
    return Session(
        key=key,
        items=np.array(items, dtype=np.int64),
        actions=np.array(actions, dtype=np.int8),
        start=0,
    )


# --------------------------------------------------------------------------- secure sum


@pytest.mark.parametrize(
    ("n_partners", "scale"),
    [
        (2, 2**29),  # room (2^32 - 1) // 4 = 2^30 - 1, capped by the int32 quantizer at 2^29
        (3, 2**29),  # (2^32 - 1) // 6 = 715,827,882 -> 2^29
        (10, 2**27),  # (2^32 - 1) // 20 = 214,748,364 -> 2^27
        (1000, 2**21),  # (2^32 - 1) // 2000 = 2,147,483 -> 2^21
    ],
)
def test_count_scale_is_the_largest_power_of_two_that_cannot_overflow(n_partners, scale):
    # Execute
    got = secure_sum.count_scale(n_partners)
    # Assert
    assert got == scale
    assert n_partners * 2 * got < secure_sum.DEFAULT_MODULUS


def test_encoded_counts_quantize_to_counts_plus_scale_exactly():
    # Prepare: Flower's own SecAgg+ quantizer with the secure-sum settings
    scale = 2**21
    counts = np.array([[0, 1, 7], [2**21, 123_456, 3]], dtype=np.int64)
    # Execute
    encoded = secure_sum.encode_counts([counts], scale)
    quantized = quantize(encoded, secure_sum.CLIPPING_RANGE, secure_sum.quantization_range(scale))[
        0
    ]
    # Assert: no stochastic rounding happened, every value is count + S
    np.testing.assert_array_equal(quantized, counts + scale)


def test_decoding_the_mean_of_a_thousand_partners_gives_their_exact_sum():
    # Prepare: counts up to the bound S, averaged in float64 as FedAvg does
    n, scale = 1000, secure_sum.count_scale(1000)
    rng = np.random.default_rng(0)
    counts = [rng.integers(0, scale + 1, size=50) for _ in range(n)]
    encoded = [secure_sum.encode_counts([c], scale)[0] for c in counts]
    mean = sum(e * (1 / n) for e in encoded)
    # Execute
    total = secure_sum.decode_sum([mean], n, scale)[0]
    # Assert
    np.testing.assert_array_equal(total, np.sum(counts, axis=0))


def test_fixed_point_floats_of_a_thousand_partners_sum_within_the_stated_bound():
    # Prepare: NLL-like sums, large and small, averaged in float64 as FedAvg does
    n, scale = 1000, secure_sum.count_scale(1000)
    rng = np.random.default_rng(0)
    values = [rng.uniform(0, 1e5, size=20) * rng.random(20) for _ in range(n)]
    encoded = [secure_sum.encode_fixed(v, scale)[0] for v in values]
    mean = sum(e * (1 / n) for e in encoded)
    # Execute
    total = secure_sum.decode_fixed(secure_sum.decode_sum([mean], n, scale)[0], scale)
    # Assert: each partner rounds to 2**-20, so the sum is off by at most n * 2**-21
    np.testing.assert_allclose(total, np.sum(values, axis=0), rtol=1e-15, atol=n * 2**-21)
    # ... and integers (the gate's counts) come back exactly
    counts = secure_sum.encode_fixed(np.array([0.0, 3.0, 2.0**30]), 2**21)[0] * 2**21
    exact = secure_sum.decode_fixed(counts, 2**21)
    assert exact.tolist() == [0.0, 3.0, 2.0**30]
    with pytest.raises(ValueError, match="finite and in"):
        secure_sum.encode_fixed(np.array([-0.5]), scale)


@pytest.mark.parametrize(
    ("values", "rule"),
    [([0.5, 1.0], "integers"), ([-1, 2], "integers in"), ([9, 0], r"\[0, 8\]")],
)
def test_encoding_refuses_counts_it_could_not_return_exactly(values, rule):
    # Execute / Assert
    with pytest.raises(ValueError, match=rule):
        secure_sum.encode_counts([np.array(values)], 8)


# ---------------------------------------------------------------------------- strategies


def _wiring(n_partners: int = 5) -> StrategyWiring:
    return StrategyWiring(n_partners=n_partners, initial_weights=[np.zeros(3, np.float32)])


@pytest.mark.parametrize("path", sorted((REPO / "conf" / "strategy").glob("*.yaml")), ids=str)
def test_every_strategy_config_builds_its_flower_strategy(path: Path):
    # Prepare
    params = yaml.safe_load(path.read_text())
    name = params.pop("name")
    if name == "sum":
        params["scale"] = 2**20  # derived by the server, never configured
    # Execute
    strategy = build_strategy(name, params, secagg=False, wiring=_wiring(11))
    # Assert
    assert name == path.stem
    assert type(strategy) is STRATEGIES[name]


def test_strategy_receives_its_parameters_and_the_federation_wiring():
    # Prepare
    wiring = StrategyWiring(
        n_partners=40, initial_weights=[np.ones(2)], fraction_fit=0.25, fraction_evaluate=0.5
    )
    # Execute
    strategy = build_strategy("fedprox", {"proximal_mu": 0.3}, secagg=True, wiring=wiring)
    # Assert
    assert isinstance(strategy, FedProx)
    assert strategy.proximal_mu == 0.3
    assert strategy.fraction_fit == 0.25
    assert strategy.min_available_clients == 40
    assert strategy.num_fit_clients(40) == (10, 40)  # (sampled, wait for)


@pytest.mark.parametrize("name", ["fedtrimmedavg", "fedmedian", "krum", "bulyan"])
def test_robust_strategies_are_refused_under_secagg(name: str):
    # Execute / Assert
    with pytest.raises(ConfigError, match="must run with secagg=off"):
        build_strategy(name, {}, secagg=True, wiring=_wiring())


def test_robust_strategies_build_without_secagg():
    # Execute
    krum = build_strategy("krum", {"num_malicious_clients": 1}, secagg=False, wiring=_wiring())
    bulyan = build_strategy(
        "bulyan",
        {"num_malicious_clients": 1, "num_malicious": 1, "to_keep": 0},
        secagg=False,
        wiring=_wiring(7),
    )
    # Assert
    assert isinstance(krum, Krum) and krum.num_malicious_clients == 1
    assert isinstance(bulyan, Bulyan)


def test_bulyan_refuses_too_few_partners_for_its_tolerance():
    # Execute / Assert: f = 1 needs 4 * 1 + 3 = 7 partners per round, 5 are sampled
    with pytest.raises(ConfigError, match=r"4f \+ 3 <= partners sampled per round \(5\)"):
        build_strategy("bulyan", {"num_malicious_clients": 1}, secagg=False, wiring=_wiring(5))


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("fedsgd", {}, "strategy must be one of"),
        ("fedavg", {"momentum": 0.9}, "parameters must match Flower's"),
        ("fedprox", {}, "parameters must match Flower's"),
    ],
)
def test_strategy_refuses_unknown_names_and_parameters(name, params, message):
    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        build_strategy(name, params, secagg=False, wiring=_wiring())


def test_server_optimizers_get_the_initial_weights_they_need():
    # Execute
    strategy = build_strategy("fedadam", {"eta": 0.05}, secagg=True, wiring=_wiring())
    # Assert
    assert isinstance(strategy, FedAdam)
    assert strategy.initial_parameters is not None
    assert isinstance(build_strategy("sum", {"scale": 4}, secagg=True, wiring=_wiring()), FedAvg)


# ------------------------------------------------------------------------------- metrics


def test_pooled_metrics_weigh_each_metric_by_the_cases_it_averages_over():
    # Prepare: partner A 10 cases (4 with an item), partner B 30 cases (12 with an item)
    replies = [
        (4, {PARTNER: 0, "n_cases": 10.0, "n_item_cases": 4.0, "recall@20": 0.5,
             "action_accuracy": 0.2, "conversion_auc": math.nan}),
        (12, {PARTNER: 1, "n_cases": 30.0, "n_item_cases": 12.0, "recall@20": 0.25,
              "action_accuracy": 0.6, "conversion_auc": 0.8}),
    ]  # fmt: skip
    # Execute
    pooled = pooled_eval_metrics(replies)
    # Assert: (4*0.5 + 12*0.25) / 16, (10*0.2 + 30*0.6) / 40, NaN skipped
    assert pooled["recall@20"] == pytest.approx(5 / 16)
    assert pooled["action_accuracy"] == pytest.approx(0.5)
    assert pooled["conversion_auc"] == pytest.approx(0.8)
    assert pooled["n_cases"] == 40 and pooled["n_item_cases"] == 16
    assert PARTNER not in pooled


# -------------------------------------------------------------------- model spec, client


def test_spec_orders_arrays_by_name_and_restores_the_model_dtypes():
    # Prepare
    spec = ModelSpec("markov", n_items=4)
    weights = spec.initial_weights
    # Execute
    arrays = spec.to_arrays(weights)
    back = spec.from_arrays([a.astype(np.float64) for a in arrays])
    # Assert: the wire carries the sparse transitions as one fixed-shape table (4² <= 4 cells · 4)
    assert spec.names == ["action_counts", "conversion_counts", "item_counts", "transitions"]
    assert [a.shape for a in arrays] == [(3, 4), (3, 2), (4,), (4, 4)]
    assert back.keys() == weights.keys()
    assert all(back[k].dtype == weights[k].dtype for k in weights)
    assert all(not back[k].any() for k in back)  # a count model starts from zero counts
    assert spec.is_count and not ModelSpec("gru4rec", n_items=4).is_count
    with pytest.raises(ValueError, match=r"must be 4 arrays for 'markov', got 1"):
        spec.from_arrays(arrays[:1])


def _tiny_partner_cases() -> dict:
    train = [_session("a", [0, 1, 2], [0, 1, 2]), _session("b", [1, 2], [0, 0])]
    valid = [_session("c", [0, 1], [0, 0]), _session("d", [2, 3], [0, 0])]
    return {
        "train": expand_prefixes(train),
        "valid": expand_prefixes(valid),
        "test": expand_prefixes([]),
    }


def test_partner_store_round_trips_every_array(tmp_path: Path):
    # Prepare
    cases = _tiny_partner_cases()
    # Execute
    save_partner(tmp_path, 3, cases)
    loaded = load_partner(tmp_path, 3)
    # Assert
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(loaded[split].prefixes, cases[split].prefixes)
        np.testing.assert_array_equal(loaded[split].next_action, cases[split].next_action)
        assert loaded[split].prefixes.dtype == cases[split].prefixes.dtype


def test_count_partner_sends_its_own_counts_encoded_with_weight_one(tmp_path: Path):
    # Prepare
    cases = _tiny_partner_cases()
    spec = ModelSpec("popularity", n_items=4)
    client = PartnerClient(7, cases, ClientSettings(model=spec, data_dir=tmp_path))
    scale = 2**10
    # Execute: whatever the global weights say, a count partner counts from zero
    global_arrays = [a + 5 for a in spec.to_arrays(spec.initial_weights)]
    arrays, weight, metrics = client.fit(global_arrays, {SERVER_ROUND: 2, COUNT_SCALE: scale})
    # Assert: item occurrences in train: 0 once, 1 twice, 2 twice, 3 never
    counts = spec.from_arrays([np.rint(a * scale) for a in arrays])
    np.testing.assert_array_equal(counts["item_counts"], [1, 2, 2, 0])
    assert weight == 1 and metrics == {PARTNER: 7}


def test_partner_evaluation_reports_one_minus_recall_over_its_item_cases(tmp_path: Path):
    # Prepare: global counts where item 1 follows 0 and item 3 follows 2
    cases = _tiny_partner_cases()
    spec = ModelSpec("markov", n_items=4)
    model = build_model("markov", n_items=4)
    model.fit(cases["train"])
    client = PartnerClient(1, cases, ClientSettings(model=spec, data_dir=tmp_path, ks=(1,)))
    # Execute
    loss, n, metrics = client.evaluate(spec.to_arrays(model.get_weights()), {EVAL_SPLIT: "valid"})
    # Assert: valid item cases are 0 -> 1 (markov's top-1 after 0 is 1: hit) and 2 -> 3 (miss:
    # nothing ever followed 2 in train, so popularity ranks 1 or 2 first)
    assert n == 2
    assert metrics["recall@1"] == pytest.approx(0.5)
    assert loss == pytest.approx(0.5)
    assert metrics[PARTNER] == 1


def test_partner_without_cases_in_the_split_answers_with_weight_zero(tmp_path: Path):
    # Prepare
    spec = ModelSpec("popularity", n_items=4)
    client = PartnerClient(2, _tiny_partner_cases(), ClientSettings(model=spec, data_dir=tmp_path))
    # Execute
    loss, n, metrics = client.evaluate(spec.to_arrays(spec.initial_weights), {EVAL_SPLIT: "test"})
    # Assert
    assert (loss, n, metrics) == (0.0, 0, {PARTNER: 2})


def test_neural_partner_trains_from_the_global_weights_for_the_local_epochs(tmp_path: Path):
    # Prepare
    spec = ModelSpec("gru4rec", n_items=4, params={"embedding_size": 4, "hidden_size": 4})
    client = PartnerClient(0, _tiny_partner_cases(), ClientSettings(model=spec, data_dir=tmp_path))
    start = spec.to_arrays(spec.initial_weights)
    # Execute
    arrays, weight, metrics = client.fit(start, {SERVER_ROUND: 1, LOCAL_EPOCHS: 2})
    # Assert: 5 train cases (3 + 2 prefixes), weights moved, a training loss came back
    assert weight == 5
    assert any(not np.array_equal(a, b) for a, b in zip(arrays, start, strict=True))
    assert metrics["train_loss"] > 0


# ---------------------------------------------------------------------------- run config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rounds": 0}, "rounds must be an integer >= 1, got 0"),
        ({"fraction_fit": 0.0}, r"fraction_fit must be in \(0, 1\], got 0.0"),
        ({"eval_split": "train"}, "eval_split must be one of"),
    ],
)
def test_federation_config_refuses_values_outside_their_rule(kwargs, message):
    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        FederationConfig(model="gru4rec", **kwargs)


@pytest.mark.parametrize(
    ("model", "strategy", "fraction_fit", "message"),
    [
        ("markov", "fedavg", 1.0, "strategy must be 'sum' exactly for count models"),
        ("gru4rec", "sum", 1.0, "strategy must be 'sum' exactly for count models"),
        ("popularity", "sum", 0.5, "fraction_fit must be 1.0 for count models"),
    ],
)
def test_run_federation_refuses_count_model_settings_that_break_the_exact_sum(
    model, strategy, fraction_fit, message
):
    # Prepare
    sessions = [_session(f"s{i}", [i % 4, (i + 1) % 4], [0, 0]) for i in range(6)]
    split = SplitDataset(train=sessions, valid=[], test=[], vocab=["a", "b", "c", "d"])
    partners = partition(split, PartitionConfig(scheme="iid", n_partners=2))
    config = FederationConfig(model=model, strategy=strategy, fraction_fit=fraction_fit)
    # Execute / Assert: refused before any simulation starts
    with pytest.raises(ConfigError, match=message):
        run_federation(split, partners, config)


def _proxy(node_id: int) -> GridClientProxy:
    return GridClientProxy(node_id=node_id, grid=None, run_id=0)  # never asked to send


def _fit_res(arrays: list[np.ndarray], weight: int, metrics: dict) -> FitRes:
    return FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), weight, metrics)


def test_secure_sum_strategy_returns_the_partners_summed_counts():
    # Prepare: three partners' counts, encoded as partners encode them
    scale = secure_sum.count_scale(3)
    counts = [np.array([3, 0, 7]), np.array([1, 1, 0]), np.array([0, 5, 2**20])]
    results = [
        (_proxy(i), _fit_res(secure_sum.encode_counts([c], scale), 1, {PARTNER: i}))
        for i, c in enumerate(counts)
    ]
    # Execute
    total, _ = SecureSum(scale=scale).aggregate_fit(1, results, [])
    # Assert
    np.testing.assert_array_equal(parameters_to_ndarrays(total)[0], [4, 6, 2**20 + 7])


def test_recorder_names_participants_and_dropped_partners_and_skips_empty_evaluations():
    # Prepare: three connected partners (nodes 10, 11, 12); node 12 drops out of training
    manager = SimpleClientManager()
    for node in (10, 11, 12):
        manager.register(_proxy(node))
    recorder = RoundRecorder(FedAvg(min_fit_clients=3, min_available_clients=3))
    start = ndarrays_to_parameters([np.zeros(2)])
    fits = {10: (np.array([1.0, 1.0]), 1), 11: (np.array([4.0, 7.0]), 3)}
    # Execute
    sampled = recorder.configure_fit(1, start, manager)
    aggregate, _ = recorder.aggregate_fit(
        1,
        [
            (_proxy(node), _fit_res([update], weight, {PARTNER: node - 10}))
            for node, (update, weight) in fits.items()
        ],
        [RuntimeError("node 12 timed out")],
    )
    no_cases = EvaluateRes(Status(Code.OK, ""), 0.0, 0, {PARTNER: 2})
    scored = EvaluateRes(Status(Code.OK, ""), 0.25, 8, {PARTNER: 0, "recall@20": 0.75})
    loss, _ = recorder.aggregate_evaluate(1, [(_proxy(10), scored), (_proxy(12), no_cases)], [])
    empty_round, _ = recorder.aggregate_evaluate(2, [(_proxy(12), no_cases)], [])
    (record, second) = recorder.rounds()
    # Assert: FedAvg's mean (1*[1, 1] + 3*[4, 7]) / 4, the dropped partner named by its
    # evaluation reply, the partner without cases left out of the evaluation
    assert len(sampled) == 3
    np.testing.assert_allclose(parameters_to_ndarrays(aggregate)[0], [3.25, 5.5])
    assert (record.sampled, record.participants, record.dropped) == (3, [0, 1], 1)
    assert (record.failures, record.dropped_partners) == (1, [2])
    assert loss == pytest.approx(0.25) and list(record.partner_metrics) == [0]
    assert empty_round is None and math.isnan(second.loss)


@pytest.mark.parametrize(
    ("sampled", "expected"),
    [(3, 3), (7, 7), (8, 7), (10, 9), (100, 15), (1000, 21)],
)
def test_log_shares_give_flower_an_odd_logarithmic_neighbourhood(
    sampled: int, expected: int
) -> None:
    # Execute: the value Flower gets, then Flower's own rule for a float num_shares
    shares = shares_of(LOG_SHARES, sampled)
    flower = sampled if shares == 1.0 else round(shares * sampled)
    # Assert: 2⌈log₂ m⌉ + 1 of m, capped at m; odd below m (SecAgg+ neighbourhoods are symmetric)
    assert flower == expected
    assert flower == sampled or flower % 2 == 1


def test_share_settings_other_than_log_pass_through_and_unknown_words_are_refused() -> None:
    assert shares_of(0.5, 100) == 0.5 and shares_of(9, 100) == 9
    with pytest.raises(ConfigError, match=r"secagg.num_shares must be 'log', an int or a float"):
        shares_of("half", 10)
