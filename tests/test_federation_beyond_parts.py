"""Beyond training, without a simulation: funnel, gate, faults, bytes, personalization."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from federation_paths import N_ITEMS, TINY_GRU, paths, walk_split
from flower_messages import message
from flwr.common import (
    Array,
    ArrayRecord,
    ConfigRecord,
    RecordDict,
    ndarrays_to_parameters,
)
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import FedAvg

from fedpath.clients.client import ClientSettings, PartnerClient
from fedpath.clients.faults import FaultPlan, PartnerDropout, plan_dropouts, poison
from fedpath.clients.personalize import personalization_scores, personalize
from fedpath.clients.store import load_paths, save_paths
from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Partner, Session
from fedpath.errors import ConfigError
from fedpath.evaluate import evaluate
from fedpath.federation.config import (
    FaultSettings,
    FederationConfig,
    FunnelSettings,
    GateSettings,
    PersonalizationSettings,
)
from fedpath.federation.keys import (
    COUNT_SCALE,
    FUNNEL_CHANNELS,
    FUNNEL_TASK,
    LOCAL_EPOCHS,
    PARTNER,
    SERVER_ROUND,
    TASK,
)
from fedpath.federation.spec import ModelSpec
from fedpath.metrics.funnel import Funnel, path_funnel_counts
from fedpath.models.registry import build_model
from fedpath.models.weights_io import save_weights
from fedpath.server.gate import promotes
from fedpath.simulations.federation import run_federation
from fedpath.simulations.partition import PartitionConfig, partition
from fedpath.strategies.meter import ByteMeter, payload_bytes
from fedpath.strategies.recorder import RoundRecorder

# ------------------------------------------------------------------------------- config

REPO = Path(__file__).resolve().parents[1]
GROUPS = {
    "funnel": FunnelSettings,
    "gate": GateSettings,
    "faults": FaultSettings,
    "personalization": PersonalizationSettings,
}


@pytest.mark.parametrize(
    "path",
    sorted(p for group in GROUPS for p in (REPO / "conf" / group).glob("*.yaml")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_config_file_builds_its_settings(path: Path):
    # Execute
    settings = GROUPS[path.parent.name](**yaml.safe_load(path.read_text()))
    # Assert: a federation accepts them, and "off" files turn their feature off
    FederationConfig(model="gru4rec", **{path.parent.name: settings})
    if path.stem in ("off", "none"):
        assert not getattr(settings, "enabled", False)
        assert not getattr(settings, "epochs", 0)
        assert not getattr(settings, "dropout_fraction", 0.0)
        assert not getattr(settings, "hostile_partners", ())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: GateSettings(metric="recall"), "gate.metric must be"),
        (lambda: GateSettings(metric="review_rate"), "gate.metric must be"),
        (lambda: GateSettings(margin=-0.01), "gate.margin must be >= 0, got -0.01"),
        (lambda: GateSettings(split="train"), "gate.split must be one of"),
        (lambda: FaultSettings(dropout_fraction=1.0), r"dropout_fraction must be in \[0, 1\)"),
        (lambda: FaultSettings(attack="noise"), "faults.attack must be one of"),
        (lambda: FaultSettings(attack_factor=0), "faults.attack_factor must be > 0, got 0"),
        (lambda: FaultSettings(hostile_partners=(-1,)), "hostile_partners must be partner"),
        (lambda: FunnelSettings(channels=("app", "app")), "funnel.channels must be distinct"),
        (lambda: PersonalizationSettings(epochs=-1), "personalization.epochs must be"),
        (
            lambda: FederationConfig(model="gru4rec", gate=GateSettings(metric="mrr@50")),
            r"gate.metric cut-off must be one of ks \(5, 10, 20\), got 'mrr@50'",
        ),
    ],
)
def test_settings_refuse_values_outside_their_rule(build, message):
    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        build()


def _walk_partners(n: int = 2) -> tuple:
    split = walk_split()
    return split, partition(split, PartitionConfig(scheme="iid", n_partners=n))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            FederationConfig(model="gru4rec", faults=FaultSettings(hostile_partners=(2,))),
            r"hostile_partners must be partner indices below 2, got \[2\]",
        ),
        (
            FederationConfig(
                model="markov", strategy="sum", faults=FaultSettings(dropout_fraction=0.5)
            ),
            "faults must be off for count models",
        ),
    ],
)
def test_run_federation_refuses_faults_it_cannot_simulate(config, message):
    # Prepare
    split, partners = _walk_partners()
    # Execute / Assert: refused before any simulation starts
    with pytest.raises(ConfigError, match=message):
        run_federation(split, partners, config)


def test_run_federation_refuses_a_champion_of_another_model(tmp_path: Path):
    # Prepare: a Markov chain saved as the champion of a GRU4Rec run
    split, partners = _walk_partners()
    champion = build_model("markov", n_items=N_ITEMS)
    champion.fit(expand_prefixes(split.train))
    path = save_weights(tmp_path / "champion.safetensors", champion)
    gate = GateSettings(enabled=True, champion=str(path))
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"gate.champion .* must be a 'gru4rec' model"):
        run_federation(split, partners, FederationConfig(model="gru4rec", gate=gate))


# -------------------------------------------------------------------------------- gate


@pytest.mark.parametrize(
    ("settings", "champion", "candidate", "promoted"),
    [
        (GateSettings(margin=0.02), 0.50, 0.53, True),  # better by 0.03 > 0.02
        (GateSettings(margin=0.02), 0.50, 0.51, False),  # better, but not by the margin
        (GateSettings(margin=0.0), 0.50, 0.50, False),  # a tie keeps the champion
        (GateSettings(margin=0.0), 0.50, 0.40, False),  # worse
        (GateSettings(metric="action_ece", margin=0.01), 0.10, 0.05, True),  # lower is better
        (GateSettings(metric="action_ece", margin=0.01), 0.10, 0.20, False),
        (GateSettings(), math.nan, 0.9, False),  # no evidence, no promotion
    ],
)
def test_gate_promotes_only_a_candidate_better_by_more_than_the_margin(
    settings, champion, candidate, promoted
):
    # Execute / Assert
    assert promotes(settings, champion, candidate) is promoted


# ------------------------------------------------------------------------------ faults


def test_poisoned_updates_scale_or_flip_the_partners_step():
    # Prepare: the partner moved from [1, 2] to [2, 2]: its step is [1, 0]
    start = [np.array([1.0, 2.0], dtype=np.float32)]
    update = [np.array([2.0, 2.0], dtype=np.float32)]
    # Execute
    scaled = poison(update, start, "scale", 10.0)
    flipped = poison(update, start, "sign_flip", 10.0)
    # Assert: start + 10 * step, start - 10 * step, in the update's dtype
    np.testing.assert_array_equal(scaled[0], [11.0, 2.0])
    np.testing.assert_array_equal(flipped[0], [-9.0, 2.0])
    assert scaled[0].dtype == np.float32


def test_dropout_plan_fails_the_configured_share_each_round_reproducibly():
    # Execute
    plan = plan_dropouts(0.25, n_partners=8, rounds=3, seed=4)
    again = plan_dropouts(0.25, n_partners=8, rounds=3, seed=4)
    other = plan_dropouts(0.25, n_partners=8, rounds=3, seed=5)
    # Assert: 2 of 8 partners per round, distinct, the same plan for the same seed
    faults = FaultPlan(dropouts=plan)
    for server_round in (1, 2, 3):
        dropped = faults.dropped_in(server_round)
        assert len(dropped) == 2 and all(0 <= p < 8 for p in dropped)
    assert plan == again and plan != other
    assert plan_dropouts(0.0, n_partners=8, rounds=3, seed=4) == frozenset()


def _walk_client(partner: int, faults: FaultPlan, folder: Path) -> PartnerClient:
    spec = ModelSpec("gru4rec", N_ITEMS, TINY_GRU)
    cases = {"train": expand_prefixes(paths(20, 7)), "valid": expand_prefixes([])}
    cases["test"] = cases["valid"]
    return PartnerClient(partner, cases, ClientSettings(spec, folder, faults=faults))


def test_partner_drops_out_only_in_its_planned_round(tmp_path: Path):
    # Prepare: partner 1 is planned to fail in round 2
    client = _walk_client(1, FaultPlan(dropouts=frozenset({(2, 1)})), tmp_path)
    start = client.spec.to_arrays(client.spec.initial_weights)
    # Execute / Assert
    _, weight, _ = client.fit(start, {SERVER_ROUND: 1, LOCAL_EPOCHS: 1})
    assert weight > 0
    with pytest.raises(PartnerDropout, match="partner 1 drops out of round 2"):
        client.fit(start, {SERVER_ROUND: 2, LOCAL_EPOCHS: 1})


def test_hostile_partner_sends_its_honest_step_scaled(tmp_path: Path):
    # Prepare: the same partner, honest and hostile (same data, same round seed)
    honest = _walk_client(0, FaultPlan(), tmp_path)
    hostile = _walk_client(0, FaultPlan(hostile=frozenset({0}), factor=5.0), tmp_path)
    start = honest.spec.to_arrays(honest.spec.initial_weights)
    config = {SERVER_ROUND: 1, LOCAL_EPOCHS: 1}
    # Execute
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clean, clean_weight, _ = honest.fit(start, config)
        sent, sent_weight, _ = hostile.fit(start, config)
    finally:
        torch.set_num_threads(threads)
    # Assert: start + 5 * (clean - start), with the honest weight
    assert sent_weight == clean_weight
    for s, c, g in zip(sent, clean, start, strict=True):
        np.testing.assert_allclose(s, g + 5 * (c - g), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ funnel


def _shop(key: str, actions: list[int], channel: str | None) -> Session:
    return Session(
        key=key,
        items=np.arange(len(actions), dtype=np.int64),
        actions=np.array(actions, dtype=np.int8),
        start=0,
        channel=channel,
    )


# a views; b carts; c buys after a cart; d buys without a cart (no channel); e views
SHOPS = [
    _shop("a", [0, 0], "app"),
    _shop("b", [0, 1], "app"),
    _shop("c", [0, 1, 2], "pc"),
    _shop("d", [2], None),
    _shop("e", [0], "pc"),
]


def test_partner_paths_count_the_funnel_by_hand(tmp_path: Path):
    # Prepare: the paths as a partner stores them
    save_paths(tmp_path, 5, SHOPS)
    furthest, channels = load_paths(tmp_path, 5)
    # Execute
    counts = path_funnel_counts(furthest, channels, ["app", "pc", "kiosk"])
    # Assert: all reach view (5); b, c, d reach cart (3); c, d buy (2); app: a, b -> (2, 1, 0);
    # pc: c, e -> (2, 1, 1); no kiosk session; d counts in the overall row only
    assert list(channels) == ["app", "app", "pc", None, "pc"]
    np.testing.assert_array_equal(counts, [5, 3, 2, 2, 1, 0, 2, 1, 1, 0, 0, 0])


def test_partner_answers_the_funnel_task_with_its_counts_encoded_for_the_sum(tmp_path: Path):
    # Prepare
    save_paths(tmp_path, 0, SHOPS)
    client = PartnerClient(0, {}, ClientSettings(ModelSpec("popularity", 4), tmp_path))
    scale = 2**20
    config = {TASK: FUNNEL_TASK, COUNT_SCALE: scale, FUNNEL_CHANNELS: json.dumps(["pc"])}
    # Execute
    (encoded,), weight, metrics = client.fit([np.zeros(6)], config)
    # Assert: counts / S with weight 1, the layout Funnel.from_counts reads
    counts = np.rint(encoded * scale).astype(np.int64)
    assert Funnel.from_counts(counts, ["pc"]).segments == {"all": (5, 3, 2), "pc": (2, 1, 1)}
    assert weight == 1 and metrics == {PARTNER: 0}


# ------------------------------------------------------------------------ bytes, record


def test_payload_counts_array_bytes_and_bytes_in_configs():
    # Prepare: 100 array bytes, 7 bytes of keys in a list, 5 in a value; scalars are left out
    content = RecordDict(
        {
            "arrays": ArrayRecord(
                {"w": Array(dtype="x", shape=(100,), stype="raw", data=b"\0" * 100)}
            ),
            "config": ConfigRecord({"keys": [b"abc", b"defg"], "share": b"12345", "round": 3}),
        }
    )
    sent = message(content=content, group="3")
    meter = ByteMeter()
    # Execute
    meter.count([sent, sent], meter.up)
    # Assert
    assert payload_bytes(sent) == 112
    assert meter.up == {3: 224} and not meter.down


def test_recorder_counts_a_halted_secure_round_as_all_dropped_and_reports_it():
    # Prepare: two partners sampled; SecAgg+ halts, so aggregate_fit never comes
    manager = SimpleClientManager()
    for node in (10, 11):
        manager.register(GridClientProxy(node_id=node, grid=None, run_id=0))
    meter = ByteMeter()
    meter.up[1], meter.down[1] = 40, 900
    seen = []
    recorder = RoundRecorder(
        FedAvg(min_fit_clients=2, min_available_clients=2), meter=meter, on_round=seen.append
    )
    # Execute
    recorder.configure_fit(1, ndarrays_to_parameters([np.zeros(2)]), manager)
    recorder.aggregate_evaluate(1, [], [])
    # Assert: the callback got the round with its bytes, both sampled partners dropped
    (record,) = seen
    assert (record.round, record.sampled, record.dropped, record.participants) == (1, 2, 2, [])
    assert (record.bytes_up, record.bytes_down) == (40, 900)
    assert record.row()["bytes_down"] == 900


# --------------------------------------------------------------------- personalization


def _skewed_global() -> tuple:
    """A global model fit mostly on step-1 paths, and a partner whose paths step by 2."""
    model = build_model("gru4rec", n_items=N_ITEMS, epochs=4, **TINY_GRU)
    with torch.random.fork_rng(devices=[]):
        model.fit(expand_prefixes(paths(240, 1) + paths(40, 2, step=2)))
    own = {
        "train": paths(40, 3, step=2),
        "valid": paths(15, 4, step=2),
        "test": paths(20, 5, step=2),
    }
    return model, own


@pytest.fixture(scope="module")
def skewed() -> tuple:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield _skewed_global()
    finally:
        torch.set_num_threads(threads)


def test_fine_tuning_changes_only_the_output_layers_and_helps_a_skewed_partner(skewed):
    # Prepare
    model, own = skewed
    cases = {name: expand_prefixes(sessions) for name, sessions in own.items()}
    before = model.get_weights()
    # Execute
    tuned, adopted = personalize(model, cases, epochs=5)
    after = tuned.get_weights()
    # Assert: GRU4Rec's head is its projection and the action / conversion heads (deep and wide)
    heads = {
        "encoder.project.weight",
        "encoder.project.bias",
        "action_head.weight",
        "action_head.bias",
        "convert_head.weight",
        "convert_head.bias",
        "action_wide.weight",
        "convert_wide.weight",
    }
    assert set(model.output_layer_names()) == heads
    for name in before:
        assert np.array_equal(before[name], after[name]) == (name not in heads), name
    assert all(np.array_equal(w, model.get_weights()[n]) for n, w in before.items())
    # ... and on the partner's own valid paths it is no worse (here: better)
    shared = evaluate(model, cases["valid"])
    personal = evaluate(tuned, cases["valid"])
    assert adopted
    assert personal["recall@20"] >= shared["recall@20"]
    assert personal["mrr@20"] > shared["mrr@20"]


def test_personalization_scores_compare_global_and_kept_model_per_partner(skewed):
    # Prepare: the skewed partner and one like the global traffic
    model, own = skewed
    template = walk_split()
    skewed_data = type(template)(own["train"], own["valid"], own["test"], template.vocab)
    partners = [Partner(0, "stepper", skewed_data), Partner(1, "walker", template)]
    config = FederationConfig(
        model="gru4rec", personalization=PersonalizationSettings(epochs=3, split="test")
    )
    # Execute
    scores = personalization_scores(model, partners, config)
    # Assert: the global column is the global model on each partner's own test paths; a
    # partner that did not adopt its copy keeps the global figures
    assert [(s.partner, s.name) for s in scores] == [(0, "stepper"), (1, "walker")]
    for score, partner in zip(scores, partners, strict=True):
        expected = evaluate(model, expand_prefixes(partner.data.test))
        assert score.shared["recall@20"] == pytest.approx(expected["recall@20"])
        if not score.adopted:
            assert score.personalized == score.shared
    assert scores[0].adopted


def test_personalization_refuses_count_models_and_zero_epochs():
    # Prepare
    markov = build_model("markov", n_items=N_ITEMS)
    config = FederationConfig(model="markov", strategy="sum")
    cases = {"train": expand_prefixes(paths(5, 1)), "valid": expand_prefixes(paths(2, 2))}
    # Execute / Assert
    with pytest.raises(ConfigError, match="personalization needs a neural model"):
        personalize(markov, cases, epochs=1)
    with pytest.raises(ConfigError, match=r"personalization.epochs must be >= 1"):
        personalization_scores(markov, [], config)
