"""Building blocks of the CellTransformer network.

Parameter names follow the published implementation (``self_attn.in_proj_weight``, ``linear1``,
``norm1``, ...) so that its checkpoints map onto these modules one to one. How attention is
computed over the packed batch is left to an attention backend (see :mod:`._attention`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ._attention import AttentionBackend

LAYER_NORM_EPS = 1e-5


class TransformerLayer(nn.Module):
    """Post-norm transformer layer with the semantics of :class:`torch.nn.TransformerEncoderLayer`.

    Self-attention has projection biases and appends one all-zero key and value to every sequence,
    so a query may attend to nothing; the feed-forward block uses GELU.
    """

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, add_zero_attn=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)
        for name, parameter in self.named_parameters():
            if name.endswith("weight") and ("linear" in name or "proj" in name):
                nn.init.xavier_normal_(parameter)
            elif name.endswith("bias") and ("linear" in name or "proj" in name):
                nn.init.zeros_(parameter)

    def forward(self, x: torch.Tensor, self_attention) -> torch.Tensor:
        """Apply the layer; ``self_attention(attn, x)`` computes the masked self-attention."""
        x = self.norm1(x + self.dropout(self_attention(self.self_attn, x)))
        feedforward = self.linear2(self.dropout(F.gelu(self.linear1(x))))
        return self.norm2(x + self.dropout(feedforward))


class TransformerStack(nn.Module):
    """A stack of :class:`TransformerLayer` sharing one kind of self-attention.

    With ``checkpoint_activations`` each layer's activations are recomputed during the backward
    pass instead of being kept: training needs far less memory for about a third more compute.
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        dim_feedforward: int,
        dropout: float,
        checkpoint_activations: bool = False,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(d_model, n_heads, dim_feedforward, dropout) for _ in range(n_layers)
        )
        self.checkpoint_activations = checkpoint_activations

    def forward(self, x: torch.Tensor, self_attention) -> torch.Tensor:
        for layer in self.layers:
            if self.checkpoint_activations and torch.is_grad_enabled():
                x = checkpoint(layer, x, self_attention, use_reentrant=False)
            else:
                x = layer(x, self_attention)
        return x


class AttentionPool(nn.Module):
    """Pools each neighbourhood's cell tokens into one token through attention.

    One learned query (through a LayerNorm) attends, in every head, to the neighbourhood's cells
    (keys and values each through their own LayerNorm), a learned bias key/value and an all-zero
    key/value; the attention has no projection biases and its output goes through a LayerNorm.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.query = nn.Parameter(torch.empty(1, d_model))
        nn.init.normal_(self.query, std=0.02)
        self.query_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.key_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.value_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.output_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.attn = nn.MultiheadAttention(
            d_model, n_heads, dropout=dropout, bias=False, add_bias_kv=True, add_zero_attn=True
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, backend: AttentionBackend) -> torch.Tensor:
        """Pooled token of every neighbourhood, shape ``(B, d)``, from the encoder output."""
        query = self.query_norm(self.query)
        pooled = backend.pooling_attention(
            self.attn, query, self.key_norm(tokens), self.value_norm(tokens)
        )
        return self.output_norm(self.dropout(pooled))


class ZINBHead(nn.Module):
    """Four linear maps from a decoder token to zero-inflated negative binomial parameters."""

    def __init__(self, d_model: int, n_genes: int, eps: float = 1e-9):
        super().__init__()
        self.mu = nn.Linear(d_model, n_genes)
        self.theta = nn.Linear(d_model, n_genes)
        self.scale = nn.Linear(d_model, n_genes)
        self.gate_logit = nn.Linear(d_model, n_genes)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean ``mu``, inverse dispersion ``theta``, ``zi_logits`` and ``scale`` per gene."""
        return {
            "mu": self.mu(x).exp() + self.eps,
            "theta": self.theta(x).exp() + self.eps,
            "zi_logits": self.gate_logit(x),
            "scale": self.scale(x).exp() + self.eps,
        }
