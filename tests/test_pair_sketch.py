"""The pair sketch a federation sums: linear, decoded exactly, refusing when too small."""

from __future__ import annotations

import numpy as np
import pytest

from fedpath.federation.pair_sketch import PRIME, SketchTooSmall, decode, encode, sketch_shape
from fedpath.models.pairs import canonical_csr

N_ITEMS = 40_000  # a catalogue whose dense table (1.6e9 entries) no partner could send


def random_pairs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` distinct (a, b) pairs with counts in 1..1000."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(N_ITEMS * N_ITEMS, size=n, replace=False)
    return keys // N_ITEMS, keys % N_ITEMS, rng.integers(1, 1001, size=n)


def as_csr(a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    matrix = canonical_csr(a, b, counts, N_ITEMS)
    return np.stack([matrix.indices, matrix.data]), matrix.indptr


def test_the_sum_of_partners_sketches_decodes_to_the_summed_table() -> None:
    # Prepare: three partners sharing some pairs (counts add), 3,000 pairs in all.
    partners = [random_pairs(seed, 1200) for seed in (1, 2, 3)]
    shared = random_pairs(4, 300)
    partners = [tuple(np.r_[p, s] for p, s in zip(own, shared, strict=True)) for own in partners]

    # Execute: the sketches summed as integers (the secure sum's output), then decoded.
    total = sum(encode(*pairs, cells=6000) for pairs in partners)
    got = decode(total, N_ITEMS)

    # Assert: exactly the union's summed counts, and the sum of sketches is the union's sketch.
    union = [np.concatenate(parts) for parts in zip(*partners, strict=True)]
    for got_part, want_part in zip(as_csr(*got), as_csr(*union), strict=True):
        np.testing.assert_array_equal(got_part, want_part)
    merged = canonical_csr(*union, N_ITEMS).tocoo()
    np.testing.assert_array_equal(
        total % PRIME, encode(merged.row, merged.col, merged.data, cells=6000)
    )


def test_a_sketch_too_small_to_peel_refuses_instead_of_guessing() -> None:
    # Prepare: 2,000 distinct pairs in 1,500 cells, beyond what peeling can recover.
    sketch = encode(*random_pairs(5, 2000), cells=1500)

    # Execute / Assert
    with pytest.raises(SketchTooSmall, match="raise pair_cells"):
        decode(sketch, N_ITEMS)


def test_the_wire_size_depends_on_the_cells_only() -> None:
    assert sketch_shape(3000) == (4, 3, 1000)
    assert encode(*random_pairs(6, 10), cells=3000).shape == (4, 3, 1000)
    empty = np.empty(0, dtype=np.int64)
    assert [len(x) for x in decode(np.zeros((4, 3, 1000), dtype=np.int64), N_ITEMS)] == [0, 0, 0]
    with pytest.raises(ValueError, match="cells must be >= 3"):
        encode(empty, empty, empty, cells=2)
