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
import torch.nn.functional as F
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


def _length_buckets(lengths: torch.Tensor, fill_ratio: float) -> list[torch.Tensor]:
    """Group sequences by length so that padding each group to its longest wastes little.

    Sequences are taken longest first; a new group starts when a sequence is shorter than
    ``fill_ratio`` times the longest sequence of the current group.
    """
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order].tolist()
    groups, start = [], 0
    for position in range(1, len(sorted_lengths) + 1):
        if position == len(sorted_lengths) or sorted_lengths[position] < fill_ratio * sorted_lengths[start]:
            groups.append(order[start:position])
            start = position
    return groups


class _PaddedBlock:
    """Sequences of similar length gathered from the packed tokens into one padded block.

    ``queries`` ``(m, L)`` holds the packed row of every position (padding points at the extra
    all-zero row ``n_tokens``); ``keys`` adds one column pointing at that zero row, the appended
    zero key/value; ``mask`` ``(m, 1, 1, L + 1)`` is ``True`` where a key may be attended to.
    """

    def __init__(self, starts: torch.Tensor, sizes: torch.Tensor, cls_rows: torch.Tensor | None, zero_row: int):
        length = int(sizes.max()) + (cls_rows is not None) if len(sizes) else 0
        position = torch.arange(length, device=starts.device)
        in_cells = position[None, :] < sizes[:, None]
        rows = torch.where(in_cells, starts[:, None] + position[None, :], zero_row)
        valid = in_cells
        if cls_rows is not None:
            is_cls = position[None, :] == sizes[:, None]
            rows = torch.where(is_cls, cls_rows[:, None], rows)
            valid = in_cells | is_cls
        zero_column = torch.full((len(sizes), 1), zero_row, device=starts.device)
        self.queries = rows
        self.valid = valid
        self.keys = torch.cat([rows, zero_column], dim=1)
        self.mask = torch.cat([valid, torch.ones_like(zero_column, dtype=torch.bool)], dim=1)[:, None, None, :]

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor:
        """The mask as ``0`` / ``-inf`` to add to attention scores (faster than a boolean mask on CPU)."""
        return torch.zeros(self.mask.shape, dtype=dtype, device=self.mask.device).masked_fill(~self.mask, float("-inf"))


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(rows, d)`` to ``(rows, heads, d / heads)``."""
    return x.view(x.shape[0], n_heads, x.shape[1] // n_heads)


def _with_zero_row(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros(1, *x.shape[1:])])


def _attention_dropout(attn: nn.MultiheadAttention) -> float:
    return attn.dropout if attn.training else 0.0


class PackedAttention:
    """Fast path: attention computed per neighbourhood, never building the dense masks.

    Encoder self-attention gathers each neighbourhood's cells and ``<cls>`` token into padded
    blocks of neighbourhoods of similar length and runs
    :func:`torch.nn.functional.scaled_dot_product_attention` on each block (a fused kernel on
    CUDA); its cost follows the sum of squared neighbourhood sizes rather than the square of their
    sum. Pooling is one padded block with one query per neighbourhood. Decoder attention, where
    each token sees only its partner and the zero key, reduces to ``sigmoid(q . k / sqrt(d_head))
    * v`` of the partner. The numbers equal those of :class:`DenseAttention`.

    Parameters
    ----------
    offsets
        Shape ``(B + 1,)``; neighbourhood ``i`` holds the cells ``offsets[i]:offsets[i + 1]``.
    fill_ratio
        Neighbourhoods shorter than this fraction of a block's longest start a new block.
    """

    def __init__(self, offsets: torch.Tensor, fill_ratio: float = 0.8):
        self.n_neighborhoods = len(offsets) - 1
        self.n_cells = int(offsets[-1])
        n_tokens = self.n_cells + self.n_neighborhoods
        starts, sizes = offsets[:-1], torch.diff(offsets)
        cls_rows = self.n_cells + torch.arange(self.n_neighborhoods, device=offsets.device)
        self.encoder_blocks = [
            _PaddedBlock(starts[members], sizes[members], cls_rows[members], zero_row=n_tokens)
            for members in (group.to(offsets.device) for group in _length_buckets(sizes.cpu() + 1, fill_ratio))
        ]
        gathered_rows = torch.cat([block.queries[block.valid] for block in self.encoder_blocks])
        self.encoder_order = torch.argsort(gathered_rows)
        self.pooling_block = _PaddedBlock(starts, sizes, None, zero_row=self.n_cells)

    def encoder_self_attention(self, attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
        n_heads = attn.num_heads
        q, k, v = (
            _with_zero_row(_heads(part, n_heads))
            for part in F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        )
        outputs = []
        for block in self.encoder_blocks:
            out = F.scaled_dot_product_attention(
                q[block.queries].transpose(1, 2),
                k[block.keys].transpose(1, 2),
                v[block.keys].transpose(1, 2),
                attn_mask=block.additive_mask(q.dtype),
                dropout_p=_attention_dropout(attn),
            )
            outputs.append(out.transpose(1, 2)[block.valid])
        out = torch.cat(outputs)[self.encoder_order]
        return attn.out_proj(out.reshape(x.shape))

    def pooling_attention(
        self, attn: nn.MultiheadAttention, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        n_heads = attn.num_heads
        w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
        block = self.pooling_block
        q = _heads(F.linear(query, w_q), n_heads)[None].expand(self.n_neighborhoods, 1, n_heads, -1)
        k = _with_zero_row(_heads(F.linear(keys[: self.n_cells], w_k), n_heads))[block.keys]
        v = _with_zero_row(_heads(F.linear(values[: self.n_cells], w_v), n_heads))[block.keys]
        bias_k = _heads(attn.bias_k[0], n_heads)[None].expand(self.n_neighborhoods, 1, n_heads, -1)
        bias_v = _heads(attn.bias_v[0], n_heads)[None].expand(self.n_neighborhoods, 1, n_heads, -1)
        mask = torch.cat([block.mask, block.mask.new_ones(self.n_neighborhoods, 1, 1, 1)], dim=-1)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            torch.cat([k, bias_k], dim=1).transpose(1, 2),
            torch.cat([v, bias_v], dim=1).transpose(1, 2),
            attn_mask=mask,
            dropout_p=_attention_dropout(attn),
        )
        return attn.out_proj(out.reshape(self.n_neighborhoods, -1))

    def decoder_self_attention(self, attn: nn.MultiheadAttention, y: torch.Tensor) -> torch.Tensor:
        n_heads = attn.num_heads
        q, k, v = (_heads(part, n_heads) for part in F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1))
        # Rolling by B swaps the pooled and decoding halves: row i meets its partner's key and value.
        partner_k, partner_v = k.roll(self.n_neighborhoods, dims=0), v.roll(self.n_neighborhoods, dims=0)
        weight = torch.sigmoid((q * partner_k).sum(-1, keepdim=True) / q.shape[-1] ** 0.5)
        weight = F.dropout(weight, _attention_dropout(attn))
        return attn.out_proj((weight * partner_v).reshape(y.shape))
