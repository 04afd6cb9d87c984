"""What a model's answers mean, saved with its weights: per-head temperatures and each
decision's certified review cutoff (``fedpath.models.temperature``, ``fedpath.review``).

Both are fitted on valid after training; a model served without them would state raw
probabilities and gate on a bare threshold, so they travel in the model file's metadata
(``fedpath.models.weights_io``) rather than in a run folder a deployment never sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedpath.models.temperature import Temperatures

DECISIONS = ("action", "exit", "convert", "items")  # what a merchant acts on (fedpath.review)
# The recommended list the ``items`` decision judges: the top 20, the benchmarks' cut-off.
DEFAULT_ITEMS_K = 20


@dataclass(frozen=True)
class Calibration:
    """Temperatures, and per decision the lowest confidence handled without review.

    A cutoff of ``inf`` means no cutoff was certified: every such decision goes to review.
    """

    temperatures: Temperatures = field(default_factory=Temperatures)
    cutoffs: Mapping[str, float] = field(default_factory=dict)
    threshold: float = 0.0  # the accuracy the cutoffs were certified to reach
    items_k: int = DEFAULT_ITEMS_K  # the list length the ``items`` cutoff was certified for

    def __post_init__(self) -> None:
        unknown = sorted(set(self.cutoffs) - set(DECISIONS))
        if unknown:
            raise ValueError(f"cutoff decisions must be among {DECISIONS}, got {unknown}")

    @classmethod
    def from_review(
        cls, metrics: Mapping[str, float], threshold: float, items_k: int = DEFAULT_ITEMS_K
    ) -> Calibration:
        """From ``calibrated_review``'s metrics (``*_temperature``, ``<decision>_gate_cutoff``)."""
        return cls(
            temperatures=Temperatures(
                action=float(metrics["action_temperature"]),
                convert=float(metrics["convert_temperature"]),
            ),
            cutoffs={
                d: float(metrics[f"{d}_gate_cutoff"])
                for d in DECISIONS
                if f"{d}_gate_cutoff" in metrics
            },
            threshold=threshold,
            items_k=items_k,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: an uncertified (infinite) cutoff is written ``null``."""
        return {
            "temperatures": {
                "action": self.temperatures.action,
                "convert": self.temperatures.convert,
            },
            "cutoffs": {d: (c if math.isfinite(c) else None) for d, c in self.cutoffs.items()},
            "threshold": self.threshold,
            "items_k": self.items_k,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The inverse of ``to_dict``; raises ``KeyError`` / ``TypeError`` / ``ValueError``.

        A file written before the ``items`` decision has no ``items_k`` and no ``items`` cutoff.
        """
        return cls(
            temperatures=Temperatures(**data["temperatures"]),
            cutoffs={d: (math.inf if c is None else float(c)) for d, c in data["cutoffs"].items()},
            threshold=float(data["threshold"]),
            items_k=int(data.get("items_k", DEFAULT_ITEMS_K)),
        )
