"""What both ends of a federation must agree on about the model: which one, and its array layout.

Flower ships weights as an ordered list of arrays; fedpath models speak named arrays. Server and
partners derive the order (sorted names) and the dtypes from the same fresh model, so a list
that crosses the wire always maps back onto the right names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np

from fedpath.data.cases import expand_prefixes
from fedpath.models.base import NextStepModel
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
    def names(self) -> list[str]:
        return sorted(self.initial_weights)

    def to_arrays(self, weights: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Named weights as Flower's ordered list."""
        return [np.asarray(weights[name]) for name in self.names]

    def from_arrays(self, arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Flower's ordered list back to named weights, in the model's own dtypes."""
        if len(arrays) != len(self.names):
            raise ValueError(
                f"weights must be {len(self.names)} arrays for {self.name!r}, got {len(arrays)}"
            )
        template = self.initial_weights
        return {
            name: np.asarray(array).astype(template[name].dtype, copy=False)
            for name, array in zip(self.names, arrays, strict=True)
        }
