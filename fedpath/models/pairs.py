"""Count models whose primary score reads an items x items table of pair counts, held sparse.

A catalogue has tens of thousands of items but a log observes a tiny share of the pairs, so
the table is a scipy CSR matrix: memory follows the observed pairs, not items² (a dense int32
table is 7.4 GB at Diginetica's 43,097 items). Predictions are dense only per batch of prefixes.

Weights stay named numpy arrays: the CSR's canonical form (sorted indices, no duplicate or zero
entry) as ``<pairs>.indptr`` [V + 1] int64, ``<pairs>.indices`` [nnz] int32 and ``<pairs>.data``
[nnz] int64, so two models with the same counts have identical arrays. They are not additive
array by array; a federation sums the table through a fixed-size wire layout
(``fedpath.federation.spec``), of ``pair_cells`` cells, which the model only carries: an
integer, or ``"auto"`` for the size a federation agrees from its partners' data.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fedpath.data.containers import Cases
from fedpath.models.popularity import Popularity

PARTS = ("indptr", "indices", "data")
AUTO = "auto"  # pair_cells: sized by the run from its partners' distinct pairs


def canonical_csr(
    rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, n_items: int
) -> sparse.csr_matrix:
    """[V, V] int64 CSR of the summed counts, sorted, without duplicates or zeros."""
    matrix = sparse.csr_matrix(
        (np.asarray(counts, dtype=np.int64), (np.asarray(rows), np.asarray(cols))),
        shape=(n_items, n_items),
    )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


class PairCountModel(Popularity):
    """Popularity plus a sparse pair table named ``pair_name`` (set by each subclass)."""

    pair_name: str = ""

    def __init__(
        self,
        *,
        n_items: int,
        seed: int = 0,
        smoothing: float = 1.0,
        pair_cells: int | str = AUTO,
    ) -> None:
        super().__init__(n_items=n_items, seed=seed, smoothing=smoothing)
        if pair_cells != AUTO and (
            isinstance(pair_cells, bool) or not isinstance(pair_cells, int) or pair_cells < 3
        ):
            raise ValueError(f"pair_cells must be {AUTO!r} or an integer >= 3, got {pair_cells!r}")
        self.pair_cells = pair_cells

    def _pairs(self, cases: Cases) -> sparse.csr_matrix:
        """[V, V] the pair counts of ``cases``; each subclass counts its own pairs."""
        raise NotImplementedError

    def _count(self, cases: Cases) -> dict[str, np.ndarray]:
        return {**super()._count(cases), **self.pair_arrays(self._pairs(cases))}

    def pair_arrays(self, matrix: sparse.csr_matrix) -> dict[str, np.ndarray]:
        """The weight arrays of a pair table (canonical CSR parts)."""
        matrix = canonical_csr(*_triplets(matrix), self.n_items)
        return {
            f"{self.pair_name}.indptr": matrix.indptr.astype(np.int64),
            f"{self.pair_name}.indices": matrix.indices.astype(np.int32),
            f"{self.pair_name}.data": matrix.data.astype(np.int64),
        }

    def pair_counts(self) -> sparse.csr_matrix:
        """[V, V] int64 the fitted pair table."""
        weights = self._fitted()
        parts = [weights[f"{self.pair_name}.{part}"] for part in PARTS]
        return sparse.csr_matrix((parts[2], parts[1], parts[0]), shape=(self.n_items,) * 2)

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Take counts and a pair table in canonical CSR form (checked, so a bad file says why)."""
        super().set_weights(weights)  # the fixed-shape count arrays, by name and shape
        # (the CSR parts' lengths vary with the counts, so they are checked here instead)
        names = [f"{self.pair_name}.{part}" for part in PARTS]
        missing = [name for name in names if name not in weights]
        if missing:
            raise ValueError(f"weights must contain {missing[0]!r}, got keys {sorted(weights)}")
        indptr, indices, data = (np.asarray(weights[name]) for name in names)
        if (
            indptr.shape != (self.n_items + 1,)
            or indices.shape != data.shape
            or indptr[0] != 0
            or indptr[-1] != len(data)
            or (np.diff(indptr) < 0).any()
            or (len(indices) and not 0 <= indices.min() <= indices.max() < self.n_items)
        ):
            raise ValueError(
                f"weights[{self.pair_name}.*] must be a CSR of shape ({self.n_items}, "
                f"{self.n_items}), got indptr {indptr.shape}, indices {indices.shape}, "
                f"data {data.shape}"
            )
        self.weights_.update(
            {name: array.copy() for name, array in zip(names, (indptr, indices, data), strict=True)}
        )


def _triplets(matrix: sparse.spmatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coo = matrix.tocoo()
    return coo.row, coo.col, coo.data
