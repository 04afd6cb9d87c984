"""NARM: a GRU reads the prefix; its last state plus attention over all states is the query.

Li et al., "Neural Attentive Session-based Recommendation", CIKM 2017. The global encoder is
the GRU's last state (the shopper's sequential behaviour), the local encoder an attention over
every state keyed by the last one (the shopper's main purpose in this session). The paper's
bilinear decoder ``emb_j^T B c`` is the tied item head applied to ``B c``.
"""

from __future__ import annotations

import torch
from torch import nn

from fedpath.models.neural import last_step, padding_mask
from fedpath.models.recurrent import RecurrentNextStepModel


class _AttentiveGRUEncoder(nn.Module):
    def __init__(self, embedding_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(embedding_size, hidden_size, num_layers, batch_first=True)
        self.key = nn.Linear(hidden_size, hidden_size, bias=False)  # A1 in the paper
        self.query = nn.Linear(hidden_size, hidden_size, bias=False)  # A2
        self.energy = nn.Linear(hidden_size, 1, bias=False)  # v
        self.output_dropout = nn.Dropout(dropout)
        self.bilinear = nn.Linear(2 * hidden_size, embedding_size, bias=False)  # B

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(x)  # [batch, seq_len, hidden]
        last = last_step(states, lengths)  # [batch, hidden]: the global encoder c_g
        energy = self.energy(torch.sigmoid(self.key(states) + self.query(last)[:, None, :]))
        real = padding_mask(lengths, x.size(1))[:, :, None]  # [batch, seq_len, 1]
        local = (energy * real * states).sum(1)  # [batch, hidden]: the local encoder c_l
        return self.bilinear(self.output_dropout(torch.cat([last, local], dim=1)))


class NARM(RecurrentNextStepModel):
    """NARM-style next-step model; see ``RecurrentNextStepModel`` for its parameters."""

    name = "narm"

    encoder_class = _AttentiveGRUEncoder
