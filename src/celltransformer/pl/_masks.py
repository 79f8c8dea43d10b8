"""The three attention masks of a packed batch, drawn like the published documentation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from celltransformer._constants import PACKED_KEYS
from celltransformer.data import attention_masks as build_attention_masks


def attention_masks(batch: dict[str, torch.Tensor], panel_size: float = 4.0) -> Figure:
    """Draw the encoder, pooling and decoder masks of a packed batch.

    Dark cells may attend, light cells may not: the encoder shows blocks on the diagonal for the
    neighbourhoods with thin spans at the bottom and right for the ``<cls>`` tokens, the pooling
    mask one span per row, and the decoder mask two off-diagonal lines.

    Parameters
    ----------
    batch
        A packed batch, for example from :func:`celltransformer.data.pack_batch`.
    panel_size
        Size of a panel in inches.

    Returns
    -------
    The figure.
    """
    masks = build_attention_masks(batch[PACKED_KEYS.OFFSETS])
    fig, axes = plt.subplots(1, 3, figsize=(3 * panel_size, panel_size))
    titles = [
        f"encoder ({masks.encoder.shape[0]} x {masks.encoder.shape[1]})",
        f"pooling ({masks.pooling.shape[0]} x {masks.pooling.shape[1]})",
        f"decoder ({masks.decoder.shape[0]} x {masks.decoder.shape[1]})",
    ]
    for ax, mask, title in zip(axes, masks, titles, strict=True):
        ax.imshow(~mask.cpu().numpy(), cmap="Greys", interpolation="nearest", aspect="auto")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("key token")
        ax.set_ylabel("query token")
    fig.tight_layout()
    return fig
