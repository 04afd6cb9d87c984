"""What both ends of a federation must agree on about the model: which one, and its array layout.

Flower ships weights as an ordered list of arrays; fedpath models speak named arrays. Server and
partners derive the order (sorted names) and the dtypes from the same fresh model, so a list
that crosses the wire always maps back onto the right names. A pair-count model's sparse table
travels in a fixed layout (``fedpath.federation.pair_wire``), so every partner's list has the
same shapes whatever it observed.

Under ``pair_cells: auto`` the layout's size is not in the config but agreed by the run (a
secure sum of the partners' distinct pairs, ``server/pair_size_round.py``): the partners encode
the summed round at the size the server sends (``to_arrays(..., pair_cells=)``), a single table
sent on its own (a champion, a published model) is sized by its own pairs, and a receiver reads
the size off the arrays' public shapes (``from_arrays``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any

import numpy as np

from fedpath.data.cases import expand_prefixes
from fedpath.federation.pair_sketch import FIELDS, K, cells_for
from fedpath.federation.pair_wire import PairWire
from fedpath.models.base import NextStepModel
from fedpath.models.pairs import AUTO, PairCountModel
from fedpath.models.popularity import Popularity
from fedpath.models.registry import build_model, model_class


@dataclass(frozen=True)
class ModelSpec:
    """A model name, its constructor parameters (``conf/model/<name>.yaml`` but ``name``)."""

    name: str
    n_items: int
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __getstate__(self) -> dict[str, Any]:
        """Only the fields: the cached weights stay behind when the spec is shipped to a partner."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def is_count(self) -> bool:
        """Count models (the ``Popularity`` family) hold additive counts: partners sum them."""
        return issubclass(model_class(self.name), Popularity)

    def build(self, *, seed: int | None = None, **overrides: Any) -> NextStepModel:
        """A fresh model; ``overrides`` replace configured parameters (e.g. local epochs)."""
        params = {**self.params, **overrides}
        return build_model(
            self.name, n_items=self.n_items, seed=self.seed if seed is None else seed, **params
        )

    @cached_property
    def initial_weights(self) -> dict[str, np.ndarray]:
        """Round-0 weights: a neural model's seeded initialisation, a count model's zero counts."""
        model = self.build()
        if self.is_count:
            model.fit(expand_prefixes([]))  # counting nothing gives zeros of every shape
        return model.get_weights()

    @cached_property
    def _pair_model(self) -> PairCountModel | None:
        model = self.build() if self.is_count else None
        return model if isinstance(model, PairCountModel) else None

    @property
    def sized_by_run(self) -> bool:
        """Whether the pair table's wire size is agreed by each run: ``pair_cells: auto``, on a
        catalogue whose dense table is larger than the smallest sketch (else it is sent dense)."""
        model = self._pair_model
        return (
            model is not None
            and model.pair_cells == AUTO
            and self.n_items**2 > FIELDS * cells_for(0)
        )

    def sized(self, cells: int) -> ModelSpec:
        """This spec with a pair sketch of ``cells`` cells (the dense table if that is smaller):
        the size a run agreed, as one more public value of it."""
        return replace(self, params={**self.params, "pair_cells": cells})

    def with_dense_pairs(self) -> ModelSpec:
        """This spec with the pair table sent dense, whatever the data (what session DP needs)."""
        return self.sized(max(-(-(self.n_items**2) // FIELDS), K))

    @cached_property
    def pair_wire(self) -> PairWire | None:
        """The wire layout of the model's pair table; None for a model without one."""
        model = self._pair_model
        if model is None:
            return None
        if self.sized_by_run:
            raise ValueError(
                f"pair_cells must be sized before the {self.name!r} table has a wire layout, "
                f"got {AUTO!r}: use ModelSpec.sized"
            )
        # auto on a small catalogue: the smallest sketch is larger than the dense table
        return PairWire(model, cells_for(0) if model.pair_cells == AUTO else model.pair_cells)

    @cached_property
    def _wire_template(self) -> dict[str, np.ndarray]:
        return self._to_wire(self.initial_weights)

    def _to_wire(self, weights: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return weights if self.pair_wire is None else self.pair_wire.encode(weights)

    @cached_property
    def names(self) -> list[str]:
        """The wire arrays' names, in the order Flower's list holds them."""
        return sorted(self._wire_template)

    def to_arrays(
        self, weights: Mapping[str, np.ndarray], *, pair_cells: int | None = None
    ) -> list[np.ndarray]:
        """Named weights as Flower's ordered list (a pair table in its wire layout).

        Under ``pair_cells: auto``, ``pair_cells`` is the size the run agreed for a sum of
        partners' tables; without it the table is sized by its own distinct pairs (a table sent
        on its own, never summed)."""
        if self.sized_by_run:
            assert self._pair_model is not None
            if pair_cells is None:
                pair_cells = cells_for(len(weights[f"{self._pair_model.pair_name}.data"]))
            return self.sized(pair_cells).to_arrays(weights)
        wire = self._to_wire(weights)
        return [np.asarray(wire[name]) for name in self.names]

    def _sized_as(self, arrays: Sequence[np.ndarray]) -> ModelSpec:
        """An auto-sized spec with the size ``arrays`` were sent at: a sketch's cells are in its
        shape [FIELDS, K, cells // K], which every receiver sees; otherwise the dense table."""
        probe = self.sized(K)  # the smallest sketch: sketched unless the catalogue is tiny
        assert probe.pair_wire is not None
        if probe.pair_wire.sketched:
            shape = dict(zip(probe.names, map(np.shape, arrays), strict=False)).get(
                probe.pair_wire.name, ()
            )
            if len(shape) == 3 and shape[:2] == (FIELDS, K):
                return self.sized(K * shape[2])
        return self.with_dense_pairs()

    def from_arrays(self, arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Flower's ordered list (e.g. a secure sum) back to the model's named weights."""
        if self.sized_by_run:
            return self._sized_as(arrays).from_arrays(arrays)
        if len(arrays) != len(self.names):
            raise ValueError(
                f"weights must be {len(self.names)} arrays for {self.name!r}, got {len(arrays)}"
            )
        template = self._wire_template
        wire = {
            name: np.asarray(array).astype(template[name].dtype, copy=False)
            for name, array in zip(self.names, arrays, strict=True)
        }
        return wire if self.pair_wire is None else self.pair_wire.decode(wire)
