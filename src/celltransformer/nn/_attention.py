"""How the three attention steps are computed over a packed batch.

A backend is built once per batch from the neighbourhood offsets and then serves every layer:

- ``encoder_self_attention(attn, x)``: self-attention over the ``N + B`` packed tokens, each
  neighbourhood's cells and its ``<cls>`` token seeing each other;
- ``pooling_attention(attn, query, keys, values)``: one query per neighbourhood over that
  neighbourhood's cells;
- ``decoder_self_attention(attn, y)``: pooled token ``i`` and decoding token ``i`` see each other.

Every step also sees the all-zero key/value that the attention modules append (and, for pooling,
the learned bias key/value).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from celltransformer.data._masks import attention_masks


class AttentionBackend(Protocol):
    """The three attention steps of the network over one packed batch."""

    def encoder_self_attention(self, attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
        """``(N + B, d)`` tokens to ``(N + B, d)`` attention outputs (before the residual)."""

    def pooling_attention(
        self, attn: nn.MultiheadAttention, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """One ``(1, d)`` query against ``(N + B, d)`` keys and values, to ``(B, d)``."""

    def decoder_self_attention(self, attn: nn.MultiheadAttention, y: torch.Tensor) -> torch.Tensor:
        """``(2B, d)`` tokens (pooled, then decoding) to ``(2B, d)`` attention outputs."""


class DenseAttention:
    """Reference path: :class:`torch.nn.MultiheadAttention` under the three dense boolean masks.

    Its cost is quadratic in the size of the whole batch; it exists to define the semantics.
    """

    def __init__(self, offsets: torch.Tensor):
        self.masks = attention_masks(offsets)

    def encoder_self_attention(self, attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
        return attn(x, x, x, attn_mask=self.masks.encoder, need_weights=False)[0]

    def pooling_attention(
        self, attn: nn.MultiheadAttention, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        queries = query.expand(self.masks.pooling.shape[0], -1)
        return attn(queries, keys, values, attn_mask=self.masks.pooling, need_weights=False)[0]

    def decoder_self_attention(self, attn: nn.MultiheadAttention, y: torch.Tensor) -> torch.Tensor:
        return attn(y, y, y, attn_mask=self.masks.decoder, need_weights=False)[0]
