"""Session co-occurrence: items that shared a training session with the prefix's items.

cooc(p, j) = number of training sessions containing both p and j (p ≠ j; diagonal 0). For a
prefix p₁…p_k, score(j) = Σᵢ cooc(pᵢ, j) / (k − i + 1) × 10⁶ + pop(j): the last item weighs 1,
the one before ½, and so on, because the latest clicks say most about what comes next.

Memory: cooc is a sparse CSR (``fedpath.models.pairs``) built from a sparse session × item
incidence matrix, one entry per distinct co-occurring pair; scoring multiplies a batch's sparse
[n, V] prefix weights by it, so only the batch's [n, V] scores are ever dense.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fedpath.data.containers import Cases
from fedpath.models.pairs import PairCountModel


def session_item_incidence(cases: Cases, n_items: int) -> sparse.csr_matrix:
    """[sessions, V] 1 where a session contains an item (its first item or any next item)."""
    firsts = cases.lengths == 1
    steps = cases.next_item >= 0
    sessions = np.concatenate([cases.session_index[firsts], cases.session_index[steps]])
    items = np.concatenate([cases.prefixes[firsts, 0], cases.next_item[steps]])
    _, rows = np.unique(sessions, return_inverse=True)
    incidence = sparse.csr_matrix(
        (np.ones(len(items), dtype=np.int64), (rows, items)),
        shape=(int(rows.max(initial=-1)) + 1, n_items),
    )
    incidence.data[:] = 1  # duplicates were summed: a session counts once per item
    return incidence


class SessionCooccurrence(PairCountModel):
    """Next item from how often it shared a training session with each item of the prefix."""

    name = "cooccurrence"
    pair_name = "cooc"  # [V, V] sessions holding both items

    def _pairs(self, cases: Cases) -> sparse.csr_matrix:
        incidence = session_item_incidence(cases, self.n_items)
        cooc = (incidence.T @ incidence).tocsr()  # [V, V]
        cooc.setdiag(0)
        return cooc

    def _primary(self, cases: Cases) -> sparse.csr_matrix:
        width = cases.prefixes.shape[1]
        position = np.arange(width)
        active = position[None, :] < cases.lengths[:, None]  # [n, max_len]
        rows, cols = np.nonzero(active)
        distance = (cases.lengths[rows] - cols).astype(np.float64)  # k − i + 1
        weights = sparse.csr_matrix(
            (1.0 / distance, (rows, cases.prefixes[rows, cols])),
            shape=(len(cases), self.n_items),
        )  # [n, V]: an item twice in a prefix adds both weights
        return weights @ self.pair_counts().astype(np.float64)  # [n, V]
