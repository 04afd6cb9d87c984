"""The pair sketch's size agreed from the partners' data: one secure sum before the count round.

Under ``pair_cells: auto`` a count model's pair table crosses the wire as a sketch sized by the
partners' data, not by a fixed config (``fedpath.federation.pair_sketch``). Before training,
each partner sends its number of distinct observed pairs through the exact secure sum
(``server/sum_round.py``, SecAgg+ when secagg is on); their total bounds the union's distinct
pairs from above (a pair two partners share is counted twice), and ``cells_for`` turns it into
the sketch's cells with headroom. The count round's config then carries that size, so every
partner encodes at the same size and the sum decodes exactly.

The server learns the partners' summed number of distinct pairs, and no partner's own.
"""

from __future__ import annotations

from flwr.common import Context
from flwr.server import Grid
from flwr.server.workflow import DefaultWorkflow

from fedpath.errors import FedpathError
from fedpath.federation.keys import COUNT_SCALE, PAIRS_TASK, TASK
from fedpath.federation.pair_sketch import cells_for
from fedpath.server.sum_round import secure_sum_round
from fedpath.strategies.secure_sum import decode_fixed


class PairSizeRound:
    """A step run before training (``build_server_app``'s ``before``): one secure sum."""

    def __init__(self, n_partners: int, scale: int, workflow: DefaultWorkflow) -> None:
        self.n_partners = n_partners
        self.scale = scale
        self.workflow = workflow
        self.pairs: int | None = None  # the partners' summed distinct pairs, once summed
        self.cells: int | None = None  # the sketch's agreed cells, once summed

    def __call__(self, grid: Grid, context: Context) -> None:
        arrays, partners = secure_sum_round(
            grid,
            context,
            weights=[],  # nothing to send out: a partner counts its own pairs
            config={TASK: PAIRS_TASK, COUNT_SCALE: self.scale},
            n_partners=self.n_partners,
            scale=self.scale,
            workflow=self.workflow,
        )
        if len(partners) != self.n_partners:
            raise FedpathError(
                f"all {self.n_partners} partners must send their distinct pairs to size the "
                f"pair sketch, got {len(partners)}; see the Flower log above for their errors"
            )
        self.pairs = round(float(decode_fixed(arrays[0], self.scale)[0]))
        self.cells = cells_for(self.pairs)

    def agreed_cells(self) -> int:
        """The cells the count round's config carries (the step must have run)."""
        if self.cells is None:
            raise FedpathError("the pair sketch must be sized before the count round, got none")
        return self.cells
