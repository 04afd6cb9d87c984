"""Session-level DP for the count models (privacy/dp/counts.py): the session cap, the derived
sensitivity (checked against real refits), the noise, and the signed secure-sum encoding."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

from fedpath.data.cases import expand_prefixes
from fedpath.data.containers import Session
from fedpath.federation.spec import ModelSpec
from fedpath.models.registry import build_model
from fedpath.privacy.dp.counts import (
    cap_session_cases,
    count_sensitivity,
    encode_signed_counts,
    noisy_counts,
)
from fedpath.strategies.secure_sum import NonNegativeSum

N_ITEMS = 12


def _session(key: str, items: list[int], actions: list[int] | None = None) -> Session:
    actions = actions or [0] * len(items)
    return Session(
        key=key,
        items=np.array(items, dtype=np.int64),
        actions=np.array(actions, dtype=np.int8),
        start=0,
    )


def _background() -> list[Session]:
    rng = np.random.default_rng(0)
    return [
        _session(f"s{k}", list(rng.integers(0, N_ITEMS, int(rng.integers(2, 9)))))
        for k in range(40)
    ]


def test_the_cap_keeps_the_first_cases_of_each_session_in_order():
    # Prepare: sessions of 2, 5 and 7 items
    sessions = [
        _session("a", [0, 1]),
        _session("b", [2, 3, 4, 5, 6]),
        _session("c", list(range(7))),
    ]
    cases = expand_prefixes(sessions)
    # Execute
    kept = cap_session_cases(cases, 3)
    # Assert: 2 + 3 + 3 cases, each session's shortest prefixes, in their order
    assert list(kept.session_index) == [0, 0, 1, 1, 1, 2, 2, 2]
    assert list(kept.lengths) == [1, 2, 1, 2, 3, 1, 2, 3]


@pytest.mark.parametrize("model", ["popularity", "markov", "cooccurrence"])
@pytest.mark.parametrize(
    "extreme",
    [
        [5] * 30,  # one item over and over: every increment on the same entries
        [5, 7] * 15,  # two items alternating: the most transitions between two items
        list(range(N_ITEMS)) * 3,  # every item: the most co-occurring pairs
    ],
    ids=["repeat", "alternate", "all-items"],
)
def test_one_capped_session_changes_the_counts_by_at_most_the_sensitivity(model, extreme):
    # Prepare: the counts of a log with and without one extreme session, both capped
    cap = 6
    actions = [0] * (len(extreme) - 2) + [1, 2]  # a cart and a purchase at the end
    without = _background()
    with_it = [*without, _session("extreme", extreme, actions)]
    counted = {}
    spec = ModelSpec(model, n_items=N_ITEMS)  # the noise covers the wire arrays: dense here
    for name, sessions in (("without", without), ("with", with_it)):
        fitted = spec.build()
        fitted.fit(cap_session_cases(expand_prefixes(sessions), cap))
        counted[name] = dict(zip(spec.names, spec.to_arrays(fitted.get_weights()), strict=True))
    names = spec.names
    # Execute
    change = np.sqrt(
        sum(((counted["with"][n] - counted["without"][n]).astype(float) ** 2).sum() for n in names)
    )
    # Assert
    assert 0 < change <= count_sensitivity(names, cap)


def test_the_item_count_bound_is_reached_by_a_session_of_one_repeated_item():
    # Prepare: 6 kept cases of "5 5 5 ...": the first item and 6 next items, all item 5
    session = _session("x", [5] * 30)
    fitted = build_model("popularity", n_items=N_ITEMS)
    # Execute
    fitted.fit(cap_session_cases(expand_prefixes([session]), 6))
    # Assert
    assert fitted.get_weights()["item_counts"][5] == 7 == count_sensitivity(["item_counts"], 6)


def test_an_array_without_a_known_bound_is_refused():
    with pytest.raises(ValueError, match="known per-session bound"):
        count_sensitivity(["item_counts", "embeddings"], 5)


def test_noisy_counts_are_integers_with_the_requested_spread():
    # Prepare
    counts = [np.full(20_000, 50, dtype=np.int64), np.zeros((3, 4), dtype=np.int32)]
    # Execute
    noisy = noisy_counts(counts, 4.0, np.random.default_rng(1))
    # Assert: rounding adds variance 1/12 to 16
    assert all(
        a.dtype == np.int64 and a.shape == c.shape for a, c in zip(noisy, counts, strict=True)
    )
    spread = (noisy[0] - 50).std()
    assert spread == pytest.approx(np.sqrt(16 + 1 / 12), rel=0.03)
    assert abs((noisy[0] - 50).mean()) < 0.15
    assert (noisy[1] < 0).any()


def test_signed_counts_encode_within_the_scale_and_refuse_outside():
    # Prepare
    scale = 2**10
    # Execute
    encoded = encode_signed_counts([np.array([-scale, -3, 0, 7, scale])], scale)
    # Assert
    assert list(encoded[0]) == [-1.0, -3 / scale, 0.0, 7 / scale, 1.0]
    with pytest.raises(ValueError, match=r"integers in \[-1024, 1024\]"):
        encode_signed_counts([np.array([scale + 1])], scale)
    with pytest.raises(ValueError, match="integers"):
        encode_signed_counts([np.array([0.5])], scale)


def test_the_noisy_sum_is_clipped_at_zero_after_summing():
    # Prepare: two partners whose counts sum to [-5, 3, 0]; one is negative only after summing
    scale = 2**20
    partners = [np.array([-2, 4, -1]), np.array([-3, -1, 1])]
    strategy = NonNegativeSum(scale=scale)
    results = [
        (
            None,
            FitRes(
                Status(Code.OK, ""),
                ndarrays_to_parameters(encode_signed_counts([p], scale)),
                1,
                {},
            ),
        )
        for p in partners
    ]
    # Execute
    total, _ = strategy.aggregate_fit(1, results, [])
    # Assert: only what is below zero after the sum is cut (partner 1's -1 counts)
    assert list(parameters_to_ndarrays(total)[0]) == [0, 3, 0]
