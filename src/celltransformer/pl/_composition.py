"""Heatmap of the cell-type composition of domains."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData
from matplotlib.figure import Figure


def composition(
    adata: AnnData,
    domain_key: str = "domains",
    max_domains: int = 60,
    cmap: str = "viridis",
) -> Figure:
    """Heatmap of the fraction of every cell type (columns) in every domain (rows).

    Reads the table written by :func:`celltransformer.tl.domain_composition`. Domains are ordered
    so that similar compositions sit together (by their dominant cell type).

    Parameters
    ----------
    adata
        AnnData after :func:`celltransformer.tl.domain_composition`.
    domain_key
        The domains the composition was computed for.
    max_domains
        Draw at most this many domains (the largest).
    cmap
        Colour map.

    Returns
    -------
    The figure.
    """
    key = f"{domain_key}_composition"
    if key not in adata.uns:
        raise KeyError(f"adata.uns[{key!r}] is missing; run `ct.tl.domain_composition(adata, {domain_key!r})` first.")
    counts, fractions = adata.uns[key]["counts"], adata.uns[key]["fractions"]
    largest = counts.sum(axis=1).sort_values(ascending=False).index[:max_domains]
    shown = fractions.loc[largest]
    order = np.lexsort((-shown.max(axis=1).to_numpy(), shown.to_numpy().argmax(axis=1)))
    shown = shown.iloc[order]
    fig, ax = plt.subplots(figsize=(0.25 * shown.shape[1] + 3, 0.22 * shown.shape[0] + 2))
    image = ax.imshow(shown.to_numpy(), aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(shown.shape[1]), shown.columns.astype(str), rotation=90, fontsize=7)
    ax.set_yticks(range(shown.shape[0]), shown.index.astype(str), fontsize=7)
    ax.set_xlabel("cell type")
    ax.set_ylabel(domain_key)
    fig.colorbar(image, ax=ax, label="fraction of the domain's cells")
    fig.tight_layout()
    return fig
