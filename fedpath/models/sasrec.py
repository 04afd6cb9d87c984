"""SASRec: causal self-attention over the prefix; the last position's output is the query.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. Learned positions and
pre-norm transformer blocks; trained, like every fedpath model, with a full softmax over the
items on each prefix (RecBole's CE setting, which the peer figures use).
"""

from __future__ import annotations

import torch
from torch import nn

from fedpath.errors import require
from fedpath.models.neural import NeuralNextStepModel, last_step


class _SelfAttentionEncoder(nn.Module):
    def __init__(
        self,
        embedding_size: int,
        max_len: int,
        num_layers: int,
        num_heads: int,
        inner_size: int,
        dropout: float,
        attention_dropout: float,
    ):
        super().__init__()
        self.positions = nn.Embedding(max_len, embedding_size)
        # As small as the item embeddings, or position would drown out which item was seen.
        nn.init.normal_(self.positions.weight, std=embedding_size**-0.5)
        layer = nn.TransformerEncoderLayer(
            embedding_size,
            num_heads,
            dim_feedforward=inner_size,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        layer.self_attn.dropout = attention_dropout
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embedding_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        seq_len = x.size(1)
        x = x + self.positions.weight[:seq_len]  # [batch, seq_len, emb]
        # Causal: position t sees 0..t only, so the end padding of a left-aligned prefix never
        # reaches its last real position and needs no key mask.
        causal = nn.Transformer.generate_square_subsequent_mask(seq_len, device=x.device)
        outputs = self.blocks(x, mask=causal, is_causal=True)  # [batch, seq_len, emb]
        return self.norm(last_step(outputs, lengths))  # [batch, emb]


class SASRec(NeuralNextStepModel):
    """SASRec-style next-step model; see ``NeuralNextStepModel`` for the shared parameters."""

    name = "sasrec"

    def __init__(
        self,
        *,
        num_layers: int,
        num_heads: int,
        inner_size: int,
        attention_dropout: float,
        **shared,
    ) -> None:
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.inner_size = inner_size
        self.attention_dropout = attention_dropout
        super().__init__(**shared)

    def _build_encoder(self) -> nn.Module:
        for key in ("num_layers", "num_heads", "inner_size"):
            require(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        require(
            self.embedding_size % self.num_heads == 0,
            "embedding_size",
            f"a multiple of num_heads={self.num_heads}",
            self.embedding_size,
        )
        require(
            0 <= self.attention_dropout < 1,
            "attention_dropout",
            "in [0, 1)",
            self.attention_dropout,
        )
        return _SelfAttentionEncoder(
            self.embedding_size,
            self.max_len,
            self.num_layers,
            self.num_heads,
            self.inner_size,
            self.dropout,
            self.attention_dropout,
        )
