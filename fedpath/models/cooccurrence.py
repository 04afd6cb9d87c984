"""Session co-occurrence: items that shared a training session with the prefix's items.

cooc(p, j) = number of training sessions containing both p and j (p ≠ j; diagonal 0). For a
prefix p₁…p_k, score(j) = Σᵢ cooc(pᵢ, j) / (k − i + 1) × 10⁶ + pop(j): the last item weighs 1,
the one before ½, and so on, because the latest clicks say most about what comes next.

Memory: cooc is a dense [V, V] int32 array (4·V² bytes; see ``markov`` for the limit); it is
built from a sparse session × item incidence matrix, so fitting never holds more than that.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fedpath.data.containers import Cases
from fedpath.models.popularity import Popularity


def session_item_incidence(cases: Cases, n_items: int) -> sparse.csr_matrix:
    """[sessions, V] 1 where a session contains an item (its first item or any next item)."""
    firsts = cases.lengths == 1
    steps = cases.next_item >= 0
    sessions = np.concatenate([cases.session_index[firsts], cases.session_index[steps]])
    items = np.concatenate([cases.prefixes[firsts, 0], cases.next_item[steps]])
    _, rows = np.unique(sessions, return_inverse=True)
    incidence = sparse.csr_matrix(
        (np.ones(len(items), dtype=np.int32), (rows, items)),
        shape=(int(rows.max(initial=-1)) + 1, n_items),
    )
    incidence.data[:] = 1  # duplicates were summed: a session counts once per item
    return incidence


class SessionCooccurrence(Popularity):
    """Next item from how often it shared a training session with each item of the prefix."""

    name = "cooccurrence"

    def _count(self, cases: Cases) -> dict[str, np.ndarray]:
        counts = super()._count(cases)
        incidence = session_item_incidence(cases, self.n_items)
        cooc = (incidence.T @ incidence).toarray().astype(np.int32)  # [V, V]
        np.fill_diagonal(cooc, 0)
        return {**counts, "cooc": cooc}

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        return {**super()._shapes(), "cooc": (self.n_items, self.n_items)}

    def _primary(self, cases: Cases) -> np.ndarray:
        cooc = self._fitted()["cooc"]
        scores = np.zeros((len(cases), self.n_items), dtype=np.float64)  # [n, V]
        for position in range(cases.prefixes.shape[1]):
            active = position < cases.lengths  # [n]
            distance = (cases.lengths[active] - position).astype(np.float64)  # k − i + 1
            scores[active] += cooc[cases.prefixes[active, position]] / distance[:, None]
        return scores
