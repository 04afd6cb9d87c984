"""First-order Markov chain over items, with popularity breaking its ties and filling its gaps.

score(j) = count(last → j as consecutive pair in train) × 10⁶ + pop(j); a last item never seen
with a successor scores by popularity alone, which is the protocol's fallback.

Memory: the transition counts are a sparse CSR (``fedpath.models.pairs``), one entry per
distinct observed transition; a batch's primary scores are its rows, still sparse.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fedpath.data.containers import Cases
from fedpath.models.pairs import PairCountModel, canonical_csr
from fedpath.models.popularity import last_items


class MarkovChain(PairCountModel):
    """Next item from the counts of (last item → next item) pairs in training sessions."""

    name = "markov"
    pair_name = "transitions"  # [V, V] last item -> next item

    def _pairs(self, cases: Cases) -> sparse.csr_matrix:
        steps = cases.next_item >= 0
        ones = np.ones(int(steps.sum()), dtype=np.int64)
        return canonical_csr(last_items(cases)[steps], cases.next_item[steps], ones, self.n_items)

    def _primary(self, cases: Cases) -> sparse.csr_matrix:
        return self.pair_counts()[last_items(cases)].astype(np.float64)  # [n, V]
