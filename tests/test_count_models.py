"""Count baselines: the note's score definitions by hand, exact federation by summing counts,
and the note's figures reproduced on both real samples."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import yaml

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Cases, Session
from fedpath.data.loader import load_events
from fedpath.data.protocol import ProtocolConfig, apply_protocol
from fedpath.evaluate import evaluate
from fedpath.federation.spec import ModelSpec
from fedpath.metrics.ranking import target_ranks
from fedpath.models.cooccurrence import SessionCooccurrence
from fedpath.models.markov import MarkovChain
from fedpath.models.popularity import Popularity
from fedpath.models.registry import build_model, model_class, model_defaults
from fedpath.models.weights_io import load_model, save_weights
from fedpath.schema import Action

REPO = Path(__file__).resolve().parents[1]
COUNT_MODELS = (Popularity, MarkovChain, SessionCooccurrence)
V, C, P, EXIT = (int(a) for a in Action)


def sessions(*paths: list[int], actions: list[list[int]] | None = None) -> list[Session]:
    """Sessions over the given item paths (all views unless ``actions`` says otherwise)."""
    actions = actions or [[V] * len(path) for path in paths]
    return [
        Session(key=f"s{n}", items=np.array(path), actions=np.array(acts, dtype=np.int8), start=n)
        for n, (path, acts) in enumerate(zip(paths, actions, strict=True))
    ]


def ranks_of(model: Popularity, prefix: list[int], items: list[int]) -> list[int]:
    """Protocol rank of each of ``items`` after ``prefix``."""
    cases = expand_prefixes(sessions(prefix))
    scores = model.predict(cases.subset(np.array([len(prefix) - 1]))).item_scores
    return target_ranks(np.repeat(scores, len(items), axis=0), np.array(items)).tolist()


def test_popularity_ranks_by_occurrences_then_index() -> None:
    # Prepare: occurrences by hand: item 0: 1, item 1: 3, item 2: 2, item 3: 1.
    model = Popularity(n_items=4).fit(expand_prefixes(sessions([0, 1, 2], [1, 2], [3, 1])))

    # Execute
    ranks = ranks_of(model, [2], [0, 1, 2, 3])

    # Assert: order 1, 2, then the tie 0 / 3 broken by index.
    assert ranks == [3, 1, 2, 4]
    assert model.get_weights()["item_counts"].tolist() == [1, 3, 2, 1]


def test_markov_follows_the_last_item_and_falls_back_to_popularity() -> None:
    # Prepare: pairs 0→1, 1→2 (twice), 3→1; item 2 is never followed.
    model = MarkovChain(n_items=4).fit(expand_prefixes(sessions([0, 1, 2], [1, 2], [3, 1])))

    # Execute
    after_one = ranks_of(model, [0, 1], [0, 1, 2, 3])
    after_two = ranks_of(model, [1, 2], [0, 1, 2, 3])

    # Assert: after 1, item 2 (2×10⁶ + 2) leads, then popularity 1 (3), 0 (1), 3 (1).
    assert after_one == [3, 2, 1, 4]
    # After 2 nothing was seen: pure popularity 1, 2, 0, 3.
    assert after_two == [3, 1, 2, 4]


def test_markov_popularity_tie_break_survives_large_counts() -> None:
    # Prepare: 40 × (5→1) and 40 × (5→2); item 2 occurs once more than item 1.
    # 40×10⁶ + 40 and 40×10⁶ + 41 are one float32 number, so a float32 score would tie them.
    paths = [[5, 1]] * 40 + [[5, 2]] * 40 + [[2, 3]]
    model = MarkovChain(n_items=6).fit(expand_prefixes(sessions(*paths)))

    # Execute / Assert
    assert ranks_of(model, [5], [2, 1]) == [1, 2]


def test_cooccurrence_weighs_recent_items_more_and_ignores_the_diagonal() -> None:
    # Prepare: item 2 shared a session with 1, item 3 with 0, and item 3 is more popular.
    model = SessionCooccurrence(n_items=5).fit(expand_prefixes(sessions([1, 2], [0, 3], [3, 4])))

    # Execute: prefix 0 then 1, so 1 weighs 1 and 0 weighs 1/2.
    ranks = ranks_of(model, [0, 1], [2, 3, 0, 1, 4])

    # Assert: score(2) = 1×10⁶ + 1 beats score(3) = ½×10⁶ + 2 (equal weights would put 3
    # first by popularity); items 0, 1, 4 score popularity 1 only (a counted diagonal would
    # lift item 1 to a tie with item 2, winning it by index).
    assert ranks == [1, 2, 3, 4, 5]


def test_action_and_conversion_come_from_smoothed_counts() -> None:
    # Prepare: a buyer's path view → cart → purchase, and a two-view visitor.
    train = expand_prefixes(sessions([0, 1, 2], [1, 2], actions=[[V, C, P], [V, V]]))
    model = Popularity(n_items=3, smoothing=1.0).fit(train)

    # Execute: the buyer's first prefix (last action view, furthest stage view) and its
    # second prefix (furthest stage cart).
    predictions = model.predict(train.subset(np.array([0, 1])))

    # Assert: after a view the counts are view 1, cart 1, purchase 0, exit 1; +1 each over 3 + 4.
    assert predictions.action_probs[0] == pytest.approx(np.array([2, 2, 1, 2]) / 7)
    # Furthest stage view: 3 prefixes, 1 of a converting session: (1 + 1) / (3 + 2).
    # Furthest stage cart: 1 prefix, converting: (1 + 1) / (1 + 2).
    assert predictions.convert_prob == pytest.approx([2 / 5, 2 / 3])


def random_sessions(seed: int, n: int, n_items: int) -> list[Session]:
    rng = np.random.default_rng(seed)
    paths = [rng.integers(0, n_items, size=rng.integers(1, 8)).tolist() for _ in range(n)]
    actions = [rng.choice([V, V, V, C, P], size=len(p)).tolist() for p in paths]
    return sessions(*paths, actions=actions)


@pytest.mark.parametrize("pair_cells", [4096, 2400], ids=["dense wire", "sketch wire"])
@pytest.mark.parametrize("model_class", COUNT_MODELS)
def test_summed_partner_wire_arrays_equal_one_fit_on_the_union(
    model_class: type[Popularity], pair_cells: int
) -> None:
    # Prepare: two partners over one vocabulary; short prefixes so truncation is exercised.
    # 100² pair entries: 4 · 4096 cells make the wire dense, 4 · 2400 a sketch.
    first, second = random_sessions(1, 30, 100), random_sessions(2, 25, 100)
    params = {} if model_class is Popularity else {"pair_cells": pair_cells}
    spec = ModelSpec(model_class.name, n_items=100, params=params)
    fit = lambda s: spec.build().fit(expand_prefixes(s, max_len=3))  # noqa: E731

    # Execute: what a federation does, the sum of the partners' wire arrays, decoded.
    a, b, union = (
        spec.to_arrays(fit(first).get_weights()),
        spec.to_arrays(fit(second).get_weights()),
        fit(first + second),
    )
    summed = spec.from_arrays([x + y for x, y in zip(a, b, strict=True)])
    federated = spec.build()
    federated.set_weights(summed)

    # Assert: identical weights, array for array and dtype for dtype, hence identical predictions.
    expected = union.get_weights()
    assert summed.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(summed[name], expected[name], err_msg=name)
        assert summed[name].dtype == expected[name].dtype, name
    assert spec.pair_wire is None or spec.pair_wire.sketched == (pair_cells == 2400)
    probe = expand_prefixes(random_sessions(3, 10, 100), max_len=3)
    np.testing.assert_array_equal(
        federated.predict(probe).item_scores, union.predict(probe).item_scores
    )


@pytest.mark.parametrize("model_class", COUNT_MODELS)
def test_fit_counts_from_zero_so_a_federation_never_counts_twice(
    model_class: type[Popularity],
) -> None:
    # Prepare
    cases = expand_prefixes(random_sessions(4, 20, 10))
    model = model_class(n_items=10).fit(cases)
    once = model.get_weights()

    # Execute
    model.fit(cases)

    # Assert
    for name, array in model.get_weights().items():
        np.testing.assert_array_equal(array, once[name], err_msg=name)


def test_weights_are_checked_by_name_and_shape() -> None:
    model = MarkovChain(n_items=3)
    weights = MarkovChain(n_items=3).fit(expand_prefixes(sessions([0, 1]))).get_weights()
    with pytest.raises(ValueError, match=r"weights must contain 'transitions\.data'"):
        model.set_weights({k: v for k, v in weights.items() if k != "transitions.data"})
    with pytest.raises(ValueError, match=r"weights\[transitions.\*\] must be a CSR of shape"):
        model.set_weights({**weights, "transitions.indices": np.array([3], dtype=np.int32)})
    with pytest.raises(ValueError, match=r"weights\['item_counts'\] must have shape \(3,\)"):
        model.set_weights({**weights, "item_counts": np.zeros(4)})


def test_unfitted_or_misconfigured_models_say_so() -> None:
    cases = expand_prefixes(sessions([0, 1]))
    with pytest.raises(ValueError, match="must be fitted"):
        Popularity(n_items=2).predict(cases)
    with pytest.raises(ValueError, match="item indices must be < n_items=1"):
        Popularity(n_items=1).fit(cases)
    with pytest.raises(ValueError, match="smoothing must be > 0"):
        Popularity(n_items=2, smoothing=0.0).fit(cases)


@pytest.mark.parametrize("name", ["popularity", "markov", "cooccurrence"])
def test_each_yaml_builds_its_registered_model(name: str) -> None:
    # Prepare
    params = yaml.safe_load((REPO / "conf" / "model" / f"{name}.yaml").read_text())

    # Execute
    model = build_model(params.pop("name"), n_items=3, seed=0, **params)

    # Assert: the YAML names every constructor key but the two the run supplies.
    assert model.name == name
    constructor = inspect.signature(type(model)).parameters
    assert set(params) == set(constructor) - {"n_items", "seed"}


def test_prefixes_cut_to_one_item_are_refused() -> None:
    cases = expand_prefixes(sessions([0, 1, 2]), max_len=1)
    with pytest.raises(ValueError, match="prefix width must be >= 2"):
        Popularity(n_items=3).fit(cases)


def test_a_saved_count_model_predicts_the_same(tmp_path: Path) -> None:
    # Prepare
    cases = expand_prefixes(random_sessions(5, 15, 8))
    model = SessionCooccurrence(n_items=8, smoothing=0.5).fit(cases)

    # Execute
    loaded = load_model(save_weights(tmp_path / "cooc.safetensors", model))

    # Assert
    assert isinstance(loaded, SessionCooccurrence) and loaded.smoothing == 0.5
    expected, got = model.predict(cases), loaded.predict(cases)
    np.testing.assert_array_equal(got.item_scores, expected.item_scores)
    np.testing.assert_array_equal(got.action_probs, expected.action_probs)


# Test-split figures of ../shared/notes/evaluation-protocol.md: R@10, R@20, MRR@20, NDCG@20.
NOTE_FIGURES = {
    ("diginetica", "popularity"): (0.023, 0.034, 0.010, 0.015),
    ("diginetica", "markov"): (0.162, 0.173, 0.108, 0.123),
    ("diginetica", "cooccurrence"): (0.410, 0.504, 0.175, 0.250),
    ("rees46", "popularity"): (0.207, 0.326, 0.100, 0.149),
    ("rees46", "markov"): (0.478, 0.533, 0.315, 0.366),
    ("rees46", "cooccurrence"): (0.565, 0.641, 0.270, 0.354),
}
SAMPLES = {
    "diginetica": ("diginetica-sample/sample_train-item-views.csv", 266),
    "rees46": ("rees46-multicategory-sample/2019-Oct-head.csv", 92),
}


@pytest.fixture(scope="module")
def benchmark_cases(shared_data: Path) -> dict[str, tuple[int, Cases, Cases]]:
    """(n_items, train cases, test cases) of each sample under the benchmark protocol."""
    prepared = {}
    for log, (sample, _) in SAMPLES.items():
        split = apply_protocol(load_events(shared_data / sample).events, ProtocolConfig())
        prepared[log] = (split.n_items, expand_prefixes(split.train), expand_prefixes(split.test))
    return prepared


@pytest.mark.parametrize(("log", "name"), sorted(NOTE_FIGURES))
def test_the_notes_figures_are_reproduced(
    benchmark_cases: dict[str, tuple[int, Cases, Cases]], log: str, name: str
) -> None:
    # Prepare
    n_items, train, test = benchmark_cases[log]

    # Execute
    metrics = evaluate(build_model(name, n_items=n_items).fit(train), test)

    # Assert: the note's test cases, and its figures to 3 decimals.
    assert metrics["n_item_cases"] == SAMPLES[log][1]
    got = tuple(round(metrics[k], 3) for k in ("recall@10", "recall@20", "mrr@20", "ndcg@20"))
    assert got == NOTE_FIGURES[(log, name)]


@pytest.mark.parametrize("model_class", COUNT_MODELS)
def test_counting_no_case_gives_zero_counts_of_every_shape(model_class: type[Popularity]) -> None:
    # Execute: how a federation builds its round-0 weights.
    weights = model_class(n_items=4).fit(expand_prefixes([])).get_weights()

    # Assert
    assert all(not array.any() for array in weights.values())
    assert weights["item_counts"].shape == (4,)


@pytest.mark.parametrize("name", ["popularity", "markov", "cooccurrence"])
def test_constructor_defaults_are_the_yaml_values(name: str) -> None:
    # Prepare: a count model may be built directly (Popularity(n_items=3)), so its constructor
    # keeps defaults; they must be the shipped YAML's, or code and CLI would train different models.
    constructor = inspect.signature(model_class(name)).parameters

    # Execute
    code = {key: constructor[key].default for key in model_defaults(name)}

    # Assert
    assert code == model_defaults(name)
