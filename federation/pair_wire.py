"""How a pair-count model's sparse table crosses the wire: one fixed shape all partners agree on.

A secure sum adds fixed-length vectors, so the table is sent as whichever of two layouts is
smaller, decided from public values only (``n_items`` and the sketch's ``cells``: the model's
``pair_cells``, or under ``pair_cells: auto`` the size a run agreed, ``ModelSpec.sized``):

* ``dense``: the [V, V] table itself, V² integers; every pair has its own entry, which is also
  what session DP needs (noise must cover every pair, observed or not);
* ``sketch``: the linear sketch of ``fedpath.federation.pair_sketch``, ``4 · cells`` integers
  whatever V, which decodes to the exact summed table (or refuses).

Dense is chosen when V² ≤ 4 · cells. Either way the coordinator and the partners decode the
same sum to the same canonical CSR, so federated equals centralized array for array.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import sparse

from fedpath.federation.pair_sketch import FIELDS, decode, encode
from fedpath.models.pairs import PARTS, PairCountModel, canonical_csr


class PairWire:
    """The wire layout of one pair-count model's table."""

    def __init__(self, model: PairCountModel, cells: int) -> None:
        self.model = model
        self.cells = cells
        self.sketched = model.n_items * model.n_items > FIELDS * cells
        self.name = f"{model.pair_name}.sketch" if self.sketched else model.pair_name
        self._parts = [f"{model.pair_name}.{part}" for part in PARTS]

    def encode(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Model weights -> wire arrays: the CSR parts replaced by the dense table or sketch."""
        wire = {name: array for name, array in weights.items() if name not in self._parts}
        indptr, indices, data = (np.asarray(weights[name]) for name in self._parts)
        n = self.model.n_items
        matrix = sparse.csr_matrix((data, indices, indptr), shape=(n, n))
        if not self.sketched:
            wire[self.name] = matrix.toarray().astype(np.int64)  # [V, V]
            return wire
        coo = matrix.tocoo()
        wire[self.name] = encode(coo.row, coo.col, coo.data, self.cells)
        return wire

    def decode(self, wire: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Wire arrays (a sum of partners' ones) -> model weights with the table as CSR."""
        weights = {name: array for name, array in wire.items() if name != self.name}
        n = self.model.n_items
        if self.sketched:
            rows, cols, counts = decode(wire[self.name], n)
        else:
            coo = sparse.coo_matrix(np.asarray(wire[self.name]))
            rows, cols, counts = coo.row, coo.col, coo.data
        return {**weights, **self.model.pair_arrays(canonical_csr(rows, cols, counts, n))}
