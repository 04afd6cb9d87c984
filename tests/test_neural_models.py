"""The neural next-step models: they learn, they predict well-formed outputs, their weights move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases, Session
from fedpath.errors import ConfigError
from fedpath.metrics.ranking import mrr_at_k, recall_at_k, target_ranks
from fedpath.models.neural import NeuralNextStepModel
from fedpath.models.registry import build_model
from fedpath.models.weights_io import model_params

NEURAL = ("gru4rec", "sasrec", "narm")
CONF_MODEL = Path(__file__).resolve().parents[1] / "conf" / "model"
N_ITEMS = 12
TINY = {"embedding_size": 16, "batch_size": 16, "dropout": 0.0}
# The optimizer these tests were calibrated with, whatever a model's YAML default is.
ADAM = {"optimizer": "adam", "momentum": 0.0, "lr": 0.01}


def cases_of(sessions: list[list[int]], max_len: int = 8) -> Cases:
    """Every prefix of every session; the last session of each pair ends in a purchase."""
    return expand_prefixes(
        [
            Session(
                key=str(i),
                items=np.array(items, dtype=np.int64),
                actions=np.array([0] * (len(items) - 1) + [2 * (i % 2)], dtype=np.int8),
                start=i,
            )
            for i, items in enumerate(sessions)
        ],
        max_len=max_len,
    )


@pytest.fixture(scope="module")
def cyclic() -> Cases:
    """Sessions walking the items in a cycle (j is always followed by j+1): fully predictable."""
    rng = np.random.default_rng(7)
    starts = rng.integers(0, N_ITEMS, 60)
    lengths = rng.integers(2, 6, 60)
    return cases_of(
        [[(s + j) % N_ITEMS for j in range(n)] for s, n in zip(starts, lengths, strict=True)]
    )


def distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(np.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))


@pytest.mark.parametrize("name", NEURAL)
def test_each_model_learns_a_deterministic_log(name: str, cyclic: Cases) -> None:
    # Prepare
    model = build_model(name, n_items=N_ITEMS, seed=0, epochs=12, **ADAM, **TINY)
    history: list[dict[str, float]] = []
    # Execute
    model.fit(cyclic, on_epoch=lambda epoch, metrics: history.append(metrics))
    ranks = target_ranks(model.predict(cyclic.item_cases).item_scores, cyclic.item_cases.next_item)
    # Assert: chance recall@2 over 12 items is 1/6; the cycle is learnable almost perfectly.
    assert len(history) == 12
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert recall_at_k(ranks, 2) > 0.9


@pytest.mark.parametrize("name", NEURAL)
def test_sampled_softmax_learns_a_catalogue_it_never_scores_whole(name: str) -> None:
    # Prepare: a cycle over 300 items; each step scores its targets and 16 uniform items only.
    n_items = 300
    rng = np.random.default_rng(3)
    starts, lengths = rng.integers(0, n_items, 400), rng.integers(2, 6, 400)
    cycle = cases_of(
        [[(s + j) % n_items for j in range(n)] for s, n in zip(starts, lengths, strict=True)]
    )
    params = {**ADAM, **TINY, "lr": 0.03, "item_negatives": 16}
    model = build_model(name, n_items=n_items, seed=0, epochs=15, **params)
    # Execute
    model.fit(cycle)
    ranks = target_ranks(model.predict(cycle.item_cases).item_scores, cycle.item_cases.next_item)
    # Assert: ranked over all 300 items at prediction, chance recall@20 is 1/15.
    assert recall_at_k(ranks, 20) > 0.8


def test_sgd_with_momentum_learns_over_successive_fits(cyclic: Cases) -> None:
    # Prepare: SGD is GRU4Rec's default; a federated run calls fit once per round.
    model = build_model(
        "gru4rec", n_items=N_ITEMS, seed=0, epochs=6, optimizer="sgd", lr=0.1, momentum=0.9, **TINY
    )
    # Execute: two fits of 6 epochs, as two federated rounds would
    model.fit(cyclic)
    model.fit(cyclic)
    ranks = target_ranks(model.predict(cyclic.item_cases).item_scores, cyclic.item_cases.next_item)
    # Assert
    assert recall_at_k(ranks, 2) > 0.9


@pytest.mark.parametrize("name", NEURAL)
def test_predictions_have_contract_shapes_and_probabilities(name: str, cyclic: Cases) -> None:
    # Prepare
    model = build_model(name, n_items=N_ITEMS, seed=0, **TINY)
    # Execute
    predictions = model.predict(cyclic)
    # Assert
    assert predictions.item_scores.shape == (len(cyclic), N_ITEMS)
    assert predictions.action_probs.shape == (len(cyclic), 4)
    assert predictions.convert_prob.shape == (len(cyclic),)
    assert predictions.item_scores.dtype == np.float32
    np.testing.assert_allclose(predictions.action_probs.sum(axis=1), 1.0, atol=1e-5)
    assert ((predictions.convert_prob > 0) & (predictions.convert_prob < 1)).all()


def test_predicting_no_cases_gives_empty_arrays(cyclic: Cases) -> None:
    # Prepare
    model = build_model("gru4rec", n_items=N_ITEMS, **TINY)
    # Execute
    predictions = model.predict(cyclic.subset(np.zeros(len(cyclic), dtype=bool)))
    # Assert
    assert predictions.item_scores.shape == (0, N_ITEMS)
    assert predictions.action_probs.shape == (0, 4)


@pytest.mark.parametrize("name", NEURAL)
def test_weights_round_trip_gives_identical_predictions(name: str, cyclic: Cases) -> None:
    # Prepare: a fitted source and a differently seeded target
    source = build_model(name, n_items=N_ITEMS, seed=0, epochs=2, **TINY).fit(cyclic)
    target = build_model(name, n_items=N_ITEMS, seed=1, **TINY)
    # Execute
    target.set_weights(source.get_weights())
    # Assert
    expected, got = source.predict(cyclic), target.predict(cyclic)
    np.testing.assert_array_equal(got.item_scores, expected.item_scores)
    np.testing.assert_array_equal(got.action_probs, expected.action_probs)
    np.testing.assert_array_equal(got.convert_prob, expected.convert_prob)


def test_get_weights_returns_copies() -> None:
    # Prepare
    model = build_model("narm", n_items=N_ITEMS, **TINY)
    weights = model.get_weights()
    # Execute
    for array in weights.values():
        array += 1.0
    # Assert
    assert distance(model.get_weights(), weights) > 0


def test_wrong_shape_is_refused_naming_the_array_and_changes_nothing() -> None:
    # Prepare
    model = build_model("sasrec", n_items=N_ITEMS, **TINY)
    before = model.get_weights()
    weights = dict(before)
    weights["item_embedding.weight"] = np.zeros((N_ITEMS, 16), np.float32)  # one row short
    # Execute / Assert
    with pytest.raises(ValueError, match=r"item_embedding\.weight.*\(13, 16\).*\(12, 16\)"):
        model.set_weights(weights)
    assert distance(model.get_weights(), before) == 0


def test_missing_or_unknown_arrays_are_refused() -> None:
    # Prepare
    model = build_model("gru4rec", n_items=N_ITEMS, **TINY)
    weights = model.get_weights()
    renamed = {("bogus" if k == "action_head.bias" else k): v for k, v in weights.items()}
    # Execute / Assert
    with pytest.raises(
        ValueError, match=r"missing \['action_head\.bias'\].*unexpected \['bogus'\]"
    ):
        model.set_weights(renamed)


def test_non_finite_weights_are_refused() -> None:
    # Prepare
    model = build_model("gru4rec", n_items=N_ITEMS, **TINY)
    weights = model.get_weights()
    weights["action_head.bias"] = np.full(4, np.nan, np.float32)
    # Execute / Assert
    with pytest.raises(ValueError, match=r"action_head\.bias.*finite"):
        model.set_weights(weights)


def test_same_seed_gives_same_initial_and_fitted_weights(cyclic: Cases) -> None:
    # Prepare
    first = build_model("sasrec", n_items=N_ITEMS, seed=3, epochs=2, **{**TINY, "dropout": 0.3})
    second = build_model("sasrec", n_items=N_ITEMS, seed=3, epochs=2, **{**TINY, "dropout": 0.3})
    other = build_model("sasrec", n_items=N_ITEMS, seed=4, epochs=2, **{**TINY, "dropout": 0.3})
    # Execute
    initial_gap = distance(first.get_weights(), second.get_weights())
    first.fit(cyclic)
    second.fit(cyclic)
    # Assert
    assert initial_gap == 0
    assert distance(first.get_weights(), second.get_weights()) == 0
    assert distance(
        other.get_weights(), build_model("sasrec", n_items=N_ITEMS, **TINY).get_weights()
    )


@pytest.mark.parametrize("name", NEURAL)
def test_fedprox_term_keeps_weights_near_the_start(name: str, cyclic: Cases) -> None:
    # Prepare: two copies of one warm start, one plain and one with a strong proximal term
    free = build_model(name, n_items=N_ITEMS, seed=0, epochs=3, **ADAM, **TINY)
    held = build_model(name, n_items=N_ITEMS, seed=0, epochs=3, **ADAM, **TINY)
    held.proximal_mu = 100.0
    start = free.get_weights()
    # Execute
    free.fit(cyclic)
    held.fit(cyclic)
    # Assert
    assert distance(held.get_weights(), start) < 0.5 * distance(free.get_weights(), start)


def test_early_stopping_restores_the_best_valid_epoch(cyclic: Cases) -> None:
    # Prepare: a valid set the model cannot learn from train (the reverse cycle), so it peaks early
    reverse = cases_of([[(s - j) % N_ITEMS for j in range(4)] for s in range(N_ITEMS)])
    model = build_model("gru4rec", n_items=N_ITEMS, seed=0, epochs=15, patience=3, **TINY)
    history: list[dict[str, float]] = []
    # Execute
    model.fit(cyclic, reverse, on_epoch=lambda epoch, metrics: history.append(metrics))
    ranks = target_ranks(
        model.predict(reverse.item_cases).item_scores, reverse.item_cases.next_item
    )
    # Assert: the kept weights score what the best epoch scored, and training stopped early
    best = max(history, key=lambda m: (m["valid_recall@20"], m["valid_mrr@20"]))
    assert set(history[0]) == {"loss", "valid_recall@20", "valid_mrr@20"}
    assert recall_at_k(ranks, 20) == pytest.approx(best["valid_recall@20"])
    assert mrr_at_k(ranks, 20) == pytest.approx(best["valid_mrr@20"])
    assert best is not history[-1]
    assert len(history) < 15


def test_prefixes_longer_than_max_len_are_cut_to_their_last_items() -> None:
    # Prepare: the same last three items, with and without an earlier history
    model = build_model("sasrec", n_items=N_ITEMS, seed=0, max_len=3, **TINY)
    long, short = cases_of([[9, 8, 1, 2, 3]]), cases_of([[1, 2, 3]])
    # Execute
    long_scores = model.predict(long.subset(long.lengths == 5)).item_scores
    short_scores = model.predict(short.subset(short.lengths == 3)).item_scores
    # Assert
    np.testing.assert_allclose(long_scores, short_scores, rtol=1e-5, atol=1e-6)


def test_out_of_vocabulary_prefix_item_is_refused() -> None:
    # Prepare
    model = build_model("narm", n_items=N_ITEMS, **TINY)
    # Execute / Assert
    with pytest.raises(ValueError, match=r"prefix items must be in 0\.\.11, got 12"):
        model.predict(cases_of([[0, 12]]))


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("gru4rec", {"embedding_size": 0}, r"embedding_size must be >= 1, got 0"),
        ("gru4rec", {"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1\.0"),
        ("narm", {"hidden_size": 0}, r"hidden_size must be >= 1, got 0"),
        ("sasrec", {"embedding_size": 10, "num_heads": 4}, r"embedding_size must be a multiple"),
        ("gru4rec", {"optimizer": "rmsprop"}, r"optimizer must be one of \('adam', 'sgd'\)"),
        ("narm", {"optimizer": "adam", "momentum": 0.9}, r"momentum must be 0 unless optimizer"),
        ("gru4rec", {"optimizer": "sgd", "momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ],
)
def test_bad_hyper_parameters_are_refused(name: str, params: dict, message: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=message):
        build_model(name, n_items=N_ITEMS, **params)


def test_every_neural_model_shares_the_base() -> None:
    # Execute / Assert: one training loop, so a fix lands in every model at once
    for name in NEURAL:
        assert isinstance(build_model(name, n_items=N_ITEMS, **TINY), NeuralNextStepModel)


@pytest.mark.parametrize("name", NEURAL)
def test_config_file_sets_every_constructor_argument(name: str) -> None:
    # Prepare
    config = OmegaConf.to_container(OmegaConf.load(CONF_MODEL / f"{name}.yaml"))
    # Execute
    model = build_model(config.pop("name"), n_items=N_ITEMS, **config)
    # Assert: no key the model ignores, and no argument the file leaves to a code default
    assert set(model_params(model)) - {"n_items", "seed"} == set(config)


def test_a_model_built_from_code_trains_as_its_yaml_says() -> None:
    # Execute: no hyper-parameter given, as a library user would call it
    model = build_model("gru4rec", n_items=N_ITEMS)

    # Assert: the decision recorded in conf/model/gru4rec.yaml (SGD, lr 0.1), not a code default
    assert (model.optimizer, model.lr, model.momentum) == ("sgd", 0.1, 0.9)


def test_an_unknown_hyper_parameter_is_a_config_error_naming_it() -> None:
    # Execute / Assert: a clear ConfigError, not the constructor's TypeError
    with pytest.raises(ConfigError, match=r"model.hiden_size is not a gru4rec hyper-parameter"):
        build_model("gru4rec", n_items=N_ITEMS, hiden_size=8)
