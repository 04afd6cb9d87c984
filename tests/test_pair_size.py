"""``pair_cells: auto``: the pair sketch sized by a secure sum of the partners' distinct pairs."""

from __future__ import annotations

import numpy as np
import pytest
from test_count_models import random_sessions  # pytest puts tests/ on sys.path
from test_pair_sketch import as_csr, random_pairs

from fedpath.data.cases import expand_prefixes
from fedpath.errors import ConfigError
from fedpath.federation.contract import FederationContract, require_dense_pairs
from fedpath.federation.pair_sketch import (
    HEADROOM,
    MIN_WIDTH,
    PEEL_THRESHOLD,
    K,
    cells_for,
    decode,
    encode,
)
from fedpath.federation.spec import ModelSpec
from fedpath.privacy.dp.config import PrivacySettings, SessionDP


def test_cells_for_is_a_power_of_two_per_subtable_with_headroom_over_the_bound() -> None:
    # Prepare: around the floor (3 · 1024 cells hold 3072 / 1.845 = 1,665 pairs) and far above
    bounds = [0, 1, 1665, 1666, 30_000, 488_000, 2_420_000]

    # Execute
    cells = [cells_for(n) for n in bounds]

    # Assert: 1,666 pairs need 3,074 cells, so the next power of two per subtable
    assert cells[:4] == [3072, 3072, 3072, 6144]
    for n, size in zip(bounds, cells, strict=True):
        width = size // K
        assert size == K * width and width & (width - 1) == 0 and width >= MIN_WIDTH
        assert size >= HEADROOM * PEEL_THRESHOLD * n  # the headroom the sizing promises
        assert size <= max(K * MIN_WIDTH, 2 * (HEADROOM * PEEL_THRESHOLD * n + K))  # < twice it


@pytest.mark.parametrize("pairs", [1665, 3330, 26_640])  # the least headroom at each size
def test_disjoint_partners_at_the_tightest_bound_always_decode(pairs: int) -> None:
    # Prepare: the bound is exact (no pair shared) and sits just below a doubling of the cells,
    # the case with the least room; five partners, several hash draws (the pairs differ by seed)
    for seed in range(5):
        union = random_pairs(100 + seed, pairs)
        shares = np.array_split(np.arange(pairs), 5)
        cells = cells_for(sum(len(s) for s in shares))  # the partners' summed distinct pairs

        # Execute: the secure sum of their sketches, decoded
        total = sum(encode(*(part[s] for part in union), cells=cells) for s in shares)
        got = decode(total, 40_000)

        # Assert: the union, exactly (no SketchTooSmall)
        for got_part, want_part in zip(as_csr(*got), as_csr(*union), strict=True):
            np.testing.assert_array_equal(got_part, want_part)


def test_an_auto_spec_encodes_at_the_agreed_size_and_reads_it_back_from_the_shape() -> None:
    # Prepare: 500 items (250,000 dense entries, far above the smallest sketch's 12,288 values);
    # three partners' Markov fits
    spec = ModelSpec("markov", n_items=500)
    fits = [spec.build().fit(expand_prefixes(random_sessions(s, 80, 500))) for s in (1, 2, 3)]
    bound = sum(model.pair_counts().nnz for model in fits)

    # Execute: every partner encodes at the agreed size; the server decodes the sum by its shape
    cells = cells_for(bound)
    wires = [spec.to_arrays(model.get_weights(), pair_cells=cells) for model in fits]
    summed = spec.from_arrays([sum(parts) for parts in zip(*wires, strict=True)])
    alone = spec.to_arrays(fits[0].get_weights())  # a table sent on its own (a champion)

    # Assert: the sum decodes to the union's table; a lone table is sized by its own pairs;
    # at 110 items the dense table (12,100) is below the smallest sketch and is sent as it is
    assert spec.sized_by_run and not ModelSpec("markov", n_items=110).sized_by_run
    assert [a.shape for a in wires[0] if a.ndim == 3] == [(4, K, cells // K)]
    federated = spec.build()
    federated.set_weights(summed)
    assert (federated.pair_counts() != sum(model.pair_counts() for model in fits)).nnz == 0
    own = cells_for(fits[0].pair_counts().nnz)
    assert [a.shape for a in alone if a.ndim == 3] == [(4, K, own // K)]
    back = spec.build()
    back.set_weights(spec.from_arrays(alone))
    assert (back.pair_counts() != fits[0].pair_counts()).nnz == 0


def test_a_deployed_contract_leaves_auto_to_the_campaigns_size_round_and_goes_dense_under_dp():
    # Prepare / Execute: a campaign sizes the sketch from its partners' pairs, as a simulation does
    default = FederationContract(model="markov", item_buckets=8192).model_spec()
    private = FederationContract(
        model="markov",
        item_buckets=4096,
        privacy={"session": {"noise_multiplier": 1.0}},
    ).model_spec()
    forced = FederationContract(
        model="markov", item_buckets=8192, model_params={"pair_cells": 3 * 2**20}
    ).model_spec()

    # Assert: auto waits for the run's size (any catalogue); DP sends the dense table; an integer
    # is kept as given
    assert default.sized_by_run
    assert not private.sized_by_run and not private.pair_wire.sketched
    assert forced.pair_wire.sketched and forced.pair_wire.cells == 3 * 2**20


def test_session_dp_sends_an_auto_table_dense_up_to_the_old_payload_and_names_it_above() -> None:
    # Prepare
    private = PrivacySettings(session=SessionDP())

    # Execute / Assert: 4096² entries go dense under DP, as the fixed default did; 8192² are
    # refused before the run, naming the size that would send them dense
    require_dense_pairs(private, ModelSpec("markov", n_items=4096))
    with pytest.raises(ConfigError, match=r"need pair_cells >= 16777216, got auto"):
        require_dense_pairs(private, ModelSpec("markov", n_items=8192))
