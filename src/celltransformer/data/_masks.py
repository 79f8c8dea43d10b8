"""The three boolean attention masks of the packed format (``True`` = may not attend).

These dense masks document the format and drive the reference attention path; they are quadratic
in the size of the whole batch, which is why the default attention path never builds them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class AttentionMasks(NamedTuple):
    """Boolean masks of one packed batch of ``B`` neighbourhoods holding ``N`` cells in all."""

    encoder: torch.Tensor
    """``(N + B, N + B)``: neighbourhood ``i``'s cells and its ``<cls>`` token see each other."""
    pooling: torch.Tensor
    """``(B, N + B)``: row ``i`` is open exactly over the cells of neighbourhood ``i``."""
    decoder: torch.Tensor
    """``(2B, 2B)``: pooled token ``i`` and decoding token ``i`` see each other, nothing else."""


def token_owners(offsets: torch.Tensor) -> torch.Tensor:
    """Neighbourhood of every token of the packed sequence: the ``N`` cells, then the ``B`` ``<cls>``."""
    n_neighborhoods = len(offsets) - 1
    arange = torch.arange(n_neighborhoods, device=offsets.device)
    cell_owners = torch.repeat_interleave(arange, torch.diff(offsets))
    return torch.cat([cell_owners, arange])


def attention_masks(offsets: torch.Tensor) -> AttentionMasks:
    """Build the encoder, pooling and decoder masks of a packed batch.

    Parameters
    ----------
    offsets
        Shape ``(B + 1,)``; neighbourhood ``i`` holds the cells ``offsets[i]:offsets[i + 1]``.

    Returns
    -------
    The three masks, with ``True`` where attention is not allowed.
    """
    n_neighborhoods = len(offsets) - 1
    n_cells = int(offsets[-1])
    owners = token_owners(offsets)
    encoder = owners[:, None] != owners[None, :]

    is_cls = torch.arange(len(owners), device=offsets.device) >= n_cells
    rows = torch.arange(n_neighborhoods, device=offsets.device)
    pooling = (rows[:, None] != owners[None, :]) | is_cls[None, :]

    decoder = torch.ones(2 * n_neighborhoods, 2 * n_neighborhoods, dtype=torch.bool, device=offsets.device)
    decoder[rows, rows + n_neighborhoods] = False
    decoder[rows + n_neighborhoods, rows] = False
    return AttentionMasks(encoder=encoder, pooling=pooling, decoder=decoder)
