"""fedpath synth: a calibrated, labelled, reproducible synthetic log.

Tolerances on measured statistics are about four standard errors of the figure at the log's
size (computed in each test's comment), so a failure means the generator drifted, not noise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DIGINETICA, REES46, REPO, run_cli
from omegaconf import OmegaConf

from fedpath.data.loader import load_events
from fedpath.errors import ConfigError
from fedpath.schema import EVENT_COLUMNS, EVENT_DTYPES, Action
from fedpath.synth import (
    SynthConfig,
    generate,
    measure_log,
    meta_path,
    run_synth,
    write_synthetic,
)
from fedpath.synth import config as defaults
from fedpath.synth.calibrate import calibrate
from fedpath.synth.catalog import assign_categories, stay_probability, tilted_preferences
from fedpath.synth.generate import length_cumulative
from fedpath.synth.measure import negbin_moments, zipf_exponent
from fedpath.synth.randomness import normals, stream_key, uniforms

SMALL = SynthConfig(n_sessions=400, n_items=300)


@pytest.fixture(scope="module")
def big_log() -> tuple[SynthConfig, pd.DataFrame]:
    """About 83k events over 2,000 items with the default behaviour."""
    config = SynthConfig(n_sessions=20_000, n_items=2_000)
    return config, generate(config, seed=11)


# --- reproducibility -------------------------------------------------------------------------


def test_same_seed_same_log_other_seed_other_log() -> None:
    # Prepare / Execute
    first, again = generate(SMALL, seed=3), generate(SMALL, seed=3)
    other = generate(SMALL, seed=4)

    # Assert
    pd.testing.assert_frame_equal(first, again)
    assert not first["item_id"].equals(other["item_id"])


def test_chunked_generation_equals_one_shot() -> None:
    # Prepare / Execute: 7-session chunks cut sessions' neighbourhoods everywhere
    one_shot = generate(SMALL, seed=5, chunk_sessions=SMALL.n_sessions)
    chunked = generate(SMALL, seed=5, chunk_sessions=7)

    # Assert
    pd.testing.assert_frame_equal(one_shot, chunked)


def test_counter_draws_depend_only_on_their_coordinates() -> None:
    # Prepare
    key = stream_key(9, 1)
    index = np.arange(100_000)

    # Execute
    u = uniforms(key, index, 4)
    z = normals(key, index, 4)

    # Assert: same coordinates, same draw; uniform moments 1/2 and 1/12; standard normal
    np.testing.assert_array_equal(u[500:600], uniforms(key, index[500:600], 4))
    assert not np.array_equal(u, uniforms(key, index, 5))
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(z.mean()) < 0.015 and abs(z.std() - 1.0) < 0.01


# --- schema, order and funnel structure ------------------------------------------------------


def test_events_are_canonical_and_time_ordered() -> None:
    # Execute
    events = generate(SMALL, seed=1)

    # Assert
    assert tuple(events.columns) == EVENT_COLUMNS
    assert events.dtypes.astype(str).to_dict() == EVENT_DTYPES
    assert set(events["action"].unique()) <= {Action.VIEW, Action.CART, Action.PURCHASE}
    assert events["session_id"].nunique() == SMALL.n_sessions
    same_session = events["session_id"].eq(events["session_id"].shift())
    assert (events["timestamp"].diff()[same_session] >= 0).all()
    starts = events.groupby("session_id", sort=False)["timestamp"].min().to_numpy()
    assert (np.diff(starts) >= 0).all()  # sessions come in start order
    assert starts[0] >= SMALL.start_ms and starts[-1] < SMALL.start_ms + 7 * 86_400_000
    assert (events["price"] > 0).all()
    assert set(events["channel"]) <= set(dict(SMALL.channel_shares))
    assert events["source"].nunique() == SMALL.n_platforms


def test_carts_and_purchases_are_of_the_item_just_viewed() -> None:
    # Prepare
    events = generate(SynthConfig(n_sessions=3000, n_items=500), seed=2)
    same_session = events["session_id"].eq(events["session_id"].shift()).to_numpy()
    actions = events["action"].to_numpy()
    items = events["item_id"].to_numpy()

    # Execute
    steps = actions != Action.VIEW
    before = np.roll(actions, 1)

    # Assert: a session starts with a view; a cart or purchase repeats the previous item and
    # follows a view (or, for a purchase, a cart)
    assert (actions[~same_session] == Action.VIEW).all()
    assert steps.sum() > 50
    assert (items[steps] == np.roll(items, 1)[steps]).all()
    assert (before[actions == Action.CART] == Action.VIEW).all()
    assert np.isin(before[actions == Action.PURCHASE], [Action.VIEW, Action.CART]).all()


# --- the synthetic label ---------------------------------------------------------------------


def test_written_log_is_labelled_and_reads_back_as_synthetic(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "synthetic.csv"

    # Execute
    written = run_synth(SMALL, path, seed=7)
    loaded = load_events(written)
    meta = json.loads(meta_path(written).read_text())

    # Assert: canonical header, syn- ids, a sidecar saying what it is, an exact round trip
    assert written == path
    assert path.read_text().splitlines()[0] == ",".join(EVENT_COLUMNS)
    assert loaded.synthetic and loaded.fmt == "fedpath"
    pd.testing.assert_frame_equal(loaded.events, generate(SMALL, seed=7))
    assert loaded.events["session_id"].str.startswith("syn-").all()
    assert loaded.events["item_id"].str.startswith("syn-").all()
    assert meta["synthetic"] is True and meta["generator"] == "fedpath synth"
    assert meta["seed"] == 7 and meta["fedpath_version"]
    assert meta["n_events"] == len(loaded.events) and meta["n_sessions"] == SMALL.n_sessions
    assert SynthConfig(**meta["config"]) == SMALL
    assert {c["sample"].split("/")[0] for c in meta["calibrated_on"]} == {
        "diginetica-sample",
        "rees46-multicategory-sample",
    }
    assert "channel_shares" in meta["assumed_not_measured"]


def test_writer_refuses_unlabelled_rows_and_leaves_nothing(tmp_path: Path) -> None:
    # Prepare: a real-looking item id among synthetic rows
    events = generate(SMALL, seed=1)
    events.loc[5, "item_id"] = "81766"
    path = tmp_path / "out.csv"

    # Execute / Assert
    with pytest.raises(ValueError, match="item_id must start with 'syn-', got '81766'"):
        write_synthetic(path, events, SMALL, seed=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_a_labelled_log(tmp_path: Path) -> None:
    # Prepare
    out = tmp_path / "cli.csv"

    # Execute
    run_cli("synth", "synth.n_sessions=60", f"out={out}", "seed=2")

    # Assert
    meta = json.loads(meta_path(out).read_text())
    assert meta["synthetic"] is True and meta["seed"] == 2 and meta["n_sessions"] == 60
    assert set(tmp_path.iterdir()) == {out, meta_path(out)}  # no Hydra folder or log beside it


# --- measured statistics match the configured ones ------------------------------------------


def test_session_lengths_follow_the_configured_negative_binomial(big_log) -> None:
    # Prepare: P(length 1) = P(NegBin = 0) = (r / (r + m))^r with m = mean - 1
    config, events = big_log
    r, m = config.session_length_dispersion, config.session_length_mean - 1
    expected_single = (r / (r + m)) ** r  # 0.3354 for the defaults

    # Execute
    stats = measure_log(events)

    # Assert: SE of the mean ~ 4.5 / sqrt(20,000) = 0.032; of the share ~ 0.0033
    assert abs(stats.session_length_mean - config.session_length_mean) < 0.13
    assert abs(stats.single_event_share - expected_single) < 0.014


def test_funnel_repeat_category_and_gap_rates_match_the_configuration(big_log) -> None:
    # Prepare
    config, events = big_log

    # Execute
    stats = measure_log(events)

    # Assert: ~60k view pairs -> SE(cart rate) ~ 0.00046; ~800 carts -> SE(purchase) ~ 0.017
    assert abs(stats.cart_rate - config.cart_rate) < 0.002
    assert abs(stats.purchase_after_view_rate - config.purchase_after_view_rate) < 0.002
    assert abs(stats.purchase_after_cart_rate - config.purchase_after_cart_rate) < 0.07
    assert abs(stats.repeat_rate - config.repeat_rate) < 0.01
    assert abs(stats.same_category_rate - config.same_category_rate) < 0.01
    assert abs(stats.gap_log_mean - config.gap_log_mean) < 0.02
    assert abs(stats.gap_log_sd - config.gap_log_sd) < 0.02


def test_category_shares_hold_overall_while_platforms_differ(big_log) -> None:
    # Prepare
    config, events = big_log
    configured = dict(config.category_shares)

    # Execute
    overall = events["category"].value_counts(normalize=True)
    by_platform = pd.crosstab(events["source"], events["category"], normalize="index")

    # Assert: whole-log shares as measured on REES46; platforms non-IID (total variation)
    for category, share in configured.items():
        assert abs(overall.get(category, 0.0) - share) < 0.02, category
    rows = by_platform.to_numpy()
    distances = [0.5 * np.abs(a - b).sum() for i, a in enumerate(rows) for b in rows[i + 1 :]]
    assert max(distances) > 0.15


def test_item_prices_scatter_around_the_category_medians(big_log) -> None:
    # Prepare: one price per item, so measure items, not events (popular items repeat)
    config, events = big_log
    items = events.drop_duplicates("item_id")
    medians = dict(config.category_price_medians)

    # Execute
    log_ratio = np.log(items["price"]) - np.log(items["category"].map(medians))

    # Assert: ~1,700 items -> SE of the mean 1.1 / 41 = 0.027, of the sd ~ 0.02
    assert abs(log_ratio.mean()) < 0.11
    assert abs(log_ratio.std() - config.price_log_sd) < 0.08


def test_popular_items_follow_the_configured_zipf(big_log) -> None:
    # Prepare
    config, events = big_log
    counts = np.sort(events["item_id"].value_counts().to_numpy())[::-1]

    # Execute: the well-sampled head (every one of the top 500 items is seen 10+ times)
    slope = zipf_exponent(counts[:500])

    # Assert
    assert counts[499] >= 10
    assert abs(slope - config.zipf_exponent) < 0.08


def _top1_accuracies(events: pd.DataFrame) -> tuple[float, float]:
    """Top-1 accuracy of "most frequent successor" and of "most popular item" on later sessions."""
    items = pd.factorize(events["item_id"])[0]
    sessions = pd.factorize(events["session_id"])[0]
    pair = (sessions[1:] == sessions[:-1]) & (items[1:] != items[:-1])
    last, nxt, owner = items[:-1][pair], items[1:][pair], sessions[1:][pair]
    train = owner < 0.8 * sessions.max()
    n = items.max() + 1
    counts = np.zeros((n, n), dtype=np.int32)
    np.add.at(counts, (last[train], nxt[train]), 1)
    seen = counts.sum(axis=1) > 0
    ask = ~train & seen[last]
    markov = (counts.argmax(axis=1)[last[ask]] == nxt[ask]).mean()
    popular = np.bincount(items[sessions < 0.8 * sessions.max()], minlength=n).argmax()
    return float(markov), float((nxt[ask] == popular).mean())


def test_first_order_counts_predict_far_above_popularity() -> None:
    # Prepare: ~16k events over 1,000 items
    with_lists = SynthConfig(n_sessions=4000, n_items=1000)
    without = SynthConfig(n_sessions=4000, n_items=1000, successor_rate=0.0)

    # Execute
    markov, popular = _top1_accuracies(generate(with_lists, seed=8))
    markov_without, _ = _top1_accuracies(generate(without, seed=8))

    # Assert: a move follows the top successor with P = 0.902 / H(8) = 0.33 at best, while the
    # top item of a 1,000-item Zipf(0.65) draws 1 / sum(r^-0.65) = 0.034 of fresh moves at most
    assert markov > 0.2 and markov > 4 * popular
    # Without lists the best first-order guess is the top item of the current category, little
    # better than popularity: the signal is the successor lists
    assert markov_without < 0.1


# --- configuration ---------------------------------------------------------------------------


def test_yaml_defaults_equal_the_dataclass_defaults() -> None:
    # Prepare
    conf = OmegaConf.load(REPO / "conf" / "synth.yaml")

    # Execute
    from_yaml = SynthConfig(**OmegaConf.to_container(conf.synth, resolve=True))

    # Assert
    assert from_yaml == SynthConfig()


def test_weights_given_as_a_mapping_are_normalised() -> None:
    # Execute
    config = SynthConfig(
        category_shares={"a": 3, "b": 1}, category_price_medians={"a": 5.0, "b": 7.0}
    )

    # Assert
    assert config.category_shares == (("a", 0.75), ("b", 0.25))
    assert config.n_categories == 2 and config.to_dict()["category_shares"] == {
        "a": 0.75,
        "b": 0.25,
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_sessions": 0}, "n_sessions must be a positive integer, got 0"),
        ({"n_items": 2.5}, "n_items must be a positive integer, got 2.5"),
        ({"n_items": 3}, r"n_items must be at least the number of categories \(14\), got 3"),
        ({"repeat_rate": 1.5}, r"repeat_rate must be a probability in \[0, 1\], got 1.5"),
        ({"cart_rate": 0.6, "purchase_after_view_rate": 0.6}, "must be at most 1, got 1.2"),
        ({"session_length_mean": 0.5}, "session_length_mean must be in"),
        ({"gap_log_sd": -1}, "gap_log_sd must be a finite non-negative number, got -1.0"),
        ({"zipf_exponent": "steep"}, "zipf_exponent must be a number, got 'steep'"),
        ({"start": "yesterday"}, "start must be an ISO 8601 time, got 'yesterday'"),
        ({"channel_shares": {"app": -1}}, "channel_shares must have finite non-negative"),
        ({"category_price_medians": {"electronics": 1.0}}, "category_price_medians must give"),
    ],
)
def test_invalid_configuration_is_refused_with_its_rule(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**changes)


# --- building blocks, against hand-computed figures ------------------------------------------


def test_negbin_moments_by_hand() -> None:
    # lengths 1,1,2,4 -> excess 0,0,1,3: mean 1, variance 1.5 -> r = 1² / (1.5 - 1) = 2
    mean, shape = negbin_moments(np.array([1, 1, 2, 4]))
    assert mean == 2.0 and shape == pytest.approx(2.0)


def test_zipf_exponent_of_an_exact_power_law() -> None:
    counts = 1e6 * np.arange(1, 201, dtype=np.float64) ** -0.8
    assert zipf_exponent(counts) == pytest.approx(0.8)


def test_length_distribution_has_the_configured_mean_and_single_share() -> None:
    # Prepare: a cut far in the tail, so truncation does not move the mean
    config = SynthConfig(
        session_length_mean=3.0, session_length_dispersion=1.0, max_session_length=500
    )

    # Execute
    pmf = np.diff(np.concatenate([[0.0], length_cumulative(config)]))

    # Assert: r = 1 is a geometric: P(1) = r / (r + m) = 1 / 3
    assert pmf[0] == pytest.approx(1 / 3)
    assert (np.arange(1, 501) * pmf).sum() == pytest.approx(3.0)


def test_category_assignment_meets_shares_and_gives_every_category_an_item() -> None:
    # weights 8,4,2,1,1 over two halves: 8 goes to one, 4+2+1+1 = 8 to the other
    halves = assign_categories(np.array([8.0, 4, 2, 1, 1]), np.array([0.5, 0.5]))
    assert np.bincount(halves, weights=[8.0, 4, 2, 1, 1]).tolist() == [8.0, 8.0]
    tiny = assign_categories(np.ones(3), np.array([0.98, 0.01, 0.01]))
    assert sorted(tiny.tolist()) == [0, 1, 2]


def test_stay_probability_and_platform_tilts_by_hand() -> None:
    # p = (1/2, 1/2), target 0.75: s + (1 - s) * 0.5 = 0.75 -> s = 0.5
    assert stay_probability(np.array([0.5, 0.5]), 0.75) == pytest.approx(0.5)
    shares = np.array([0.6, 0.3, 0.1])
    tilts = tilted_preferences(shares, 4, 1.0, np.random.default_rng(0))
    np.testing.assert_allclose(tilts.mean(axis=0), shares, atol=1e-9)
    assert np.abs(tilts - shares).max() > 0.05


# --- the defaults are the real samples' figures ----------------------------------------------


@pytest.fixture(scope="module")
def real_stats(shared_data: Path):
    return (
        measure_log(load_events(DIGINETICA, fmt="diginetica").events),
        measure_log(load_events(REES46, fmt="rees46").events),
    )


def test_measures_match_the_sample_readmes(real_stats) -> None:
    diginetica, rees46 = real_stats
    assert (diginetica.n_events, diginetica.n_sessions, diginetica.n_items) == (12391, 2986, 7139)
    assert math.isnan(diginetica.cart_rate)  # views only: no funnel to measure
    assert (rees46.n_events, rees46.n_sessions, rees46.n_items) == (5019, 1906, 2312)
    assert rees46.conversion_rate == pytest.approx(50 / 1906)
    assert rees46.category_shares["electronics"] == pytest.approx(2066 / 5019)
    assert rees46.category_shares["uncoded"] == pytest.approx(1575 / 5019)


def test_default_constants_are_what_the_samples_measure(real_stats) -> None:
    diginetica, rees46 = real_stats
    measured = {
        "SESSION_LENGTH_MEAN": diginetica.session_length_mean,
        "SESSION_LENGTH_DISPERSION": diginetica.session_length_dispersion,
        "REPEAT_RATE": rees46.repeat_rate,
        "SAME_CATEGORY_RATE": rees46.same_category_rate,
        "CART_RATE": rees46.cart_rate,
        "PURCHASE_AFTER_VIEW_RATE": rees46.purchase_after_view_rate,
        "PURCHASE_AFTER_CART_RATE": rees46.purchase_after_cart_rate,
        "GAP_LOG_MEAN": rees46.gap_log_mean,
        "GAP_LOG_SD": rees46.gap_log_sd,
        "PRICE_LOG_SD": rees46.price_log_sd,
    }
    for name, value in measured.items():
        assert getattr(defaults, name) == pytest.approx(value, rel=5e-4), name
    for category, share in defaults.CATEGORY_SHARES.items():
        assert share == pytest.approx(rees46.category_shares[category], rel=5e-4), category
    for category, price in defaults.CATEGORY_PRICE_MEDIANS.items():
        assert price == pytest.approx(rees46.category_price_medians[category], rel=5e-4)


def test_calibration_recovers_the_parameters_of_a_synthetic_log() -> None:
    # Prepare: a log whose generator we know
    truth = SynthConfig(n_sessions=1000, n_items=800, zipf_exponent=0.7, successor_rate=0.4)
    stats = measure_log(generate(truth, seed=21))

    # Execute: a small grid around the truth (the full grid is the benchmark's job)
    fitted = calibrate(stats, zipfs=(0.5, 0.7, 0.9), factors=(1.0, 1.5, 2.5)).config

    # Assert
    assert fitted.n_sessions == truth.n_sessions
    assert abs(fitted.zipf_exponent - 0.7) <= 0.05
    assert abs(fitted.successor_rate - 0.4) < 0.15
    assert fitted.repeat_rate == pytest.approx(stats.repeat_rate)
