"""GRU4Rec: a recurrent network reads the prefix; its last state is the next-step query.

Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016. As in
RecBole, each prefix is its own training case under a full softmax (cross-entropy), not the
paper's session-parallel mini-batches with sampled ranking losses: on small logs the full
softmax is cheap and the prefix cases are exactly the ones evaluated.
"""

from __future__ import annotations

import torch
from torch import nn

from fedpath.models.neural import last_step
from fedpath.models.recurrent import RecurrentNextStepModel


class _GRUEncoder(nn.Module):
    def __init__(self, embedding_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(embedding_size, hidden_size, num_layers, batch_first=True)
        self.output_dropout = nn.Dropout(dropout)
        # Back to the embedding width so the item head can stay tied to the item embedding.
        self.project = nn.Linear(hidden_size, embedding_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Left-aligned prefixes: padding comes after the last real step and cannot reach it.
        outputs, _ = self.gru(x)  # [batch, seq_len, hidden]
        return self.project(self.output_dropout(last_step(outputs, lengths)))  # [batch, emb]


class GRU4Rec(RecurrentNextStepModel):
    """GRU4Rec-style next-step model; see ``RecurrentNextStepModel`` for its parameters."""

    name = "gru4rec"

    encoder_class = _GRUEncoder
