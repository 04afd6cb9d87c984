"""What both ends of a federation must agree on about the model: which one, and its array layout.

Flower ships weights as an ordered list of arrays; fedpath models speak named arrays. Server and
partners derive the order (sorted names) and the dtypes from the same fresh model, so a list
that crosses the wire always maps back onto the right names. A pair-count model's sparse table
travels in a fixed layout (``fedpath.federation.pair_wire``), so every partner's list has the
same shapes whatever it observed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np

from fedpath.data.cases import expand_prefixes
from fedpath.federation.pair_wire import PairWire
from fedpath.models.base import NextStepModel
from fedpath.models.pairs import PairCountModel
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
    def pair_wire(self) -> PairWire | None:
        """The wire layout of the model's pair table; None for a model without one."""
        model = self.build()
        return PairWire(model) if isinstance(model, PairCountModel) else None

    @cached_property
    def _wire_template(self) -> dict[str, np.ndarray]:
        return self._to_wire(self.initial_weights)

    def _to_wire(self, weights: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return weights if self.pair_wire is None else self.pair_wire.encode(weights)

    @cached_property
    def names(self) -> list[str]:
        """The wire arrays' names, in the order Flower's list holds them."""
        return sorted(self._wire_template)

    def to_arrays(self, weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Named weights as Flower's ordered list (a pair table in its wire layout)."""
        wire = self._to_wire(weights)
        return [np.asarray(wire[name]) for name in self.names]

    def from_arrays(self, arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Flower's ordered list (e.g. a secure sum) back to the model's named weights."""
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
