"""What the GRU-based models (GRU4Rec, NARM) share: their two hyper-parameters and their checks.

Both read the prefix with a GRU of ``hidden_size`` units in ``num_layers`` layers and differ only
in what they make of its states, so a model file names its encoder and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import nn

from fedpath.errors import require
from fedpath.models.neural import NeuralNextStepModel


class RecurrentNextStepModel(NeuralNextStepModel):
    """A GRU-based next-step model; see ``NeuralNextStepModel`` for the shared parameters."""

    # Built as encoder_class(embedding_size, hidden_size, num_layers, dropout).
    encoder_class: ClassVar[Callable[[int, int, int, float], nn.Module]]

    def __init__(self, *, hidden_size: int, num_layers: int, **shared) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        super().__init__(**shared)

    def _build_encoder(self) -> nn.Module:
        for key in ("hidden_size", "num_layers"):
            require(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        return self.encoder_class(
            self.embedding_size, self.hidden_size, self.num_layers, self.dropout
        )
