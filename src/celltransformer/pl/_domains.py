"""Domains drawn on the tissue."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.figure import Figure

from ._palette import category_colors


def domains(
    adata: AnnData,
    keys: str | list[str] = "domains",
    library_key: str | None = None,
    spatial_key: str = "spatial",
    point_size: float | None = None,
    panel_size: float = 4.0,
    legend: bool = True,
) -> Figure:
    """Draw categorical labels (domains, truth) on the tissue, one panel per section and key.

    Rows are sections (of ``adata.obs[library_key]``), columns are ``keys``; a category has the
    same colour in every section.

    Parameters
    ----------
    adata
        AnnData with coordinates in ``adata.obsm[spatial_key]``.
    keys
        Categorical columns of ``adata.obs`` to draw.
    library_key
        Column of ``adata.obs`` with sections; ``None`` draws all cells in one panel.
    spatial_key
        Key of the coordinates in ``adata.obsm``.
    point_size
        Marker size; by default it shrinks with the number of cells.
    panel_size
        Size of a panel in inches.
    legend
        Whether to show a legend (for at most 40 categories).

    Returns
    -------
    The figure.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    for key in keys:
        if key not in adata.obs:
            raise KeyError(f"{key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)}).")
    xy = np.asarray(adata.obsm[spatial_key])[:, :2]
    sections = (
        pd.Categorical(adata.obs[library_key]) if library_key is not None else pd.Categorical(np.zeros(adata.n_obs))
    )
    largest_section = int(np.bincount(sections.codes).max())
    size = point_size if point_size is not None else float(np.clip(20_000 / largest_section, 0.2, 30.0))
    fig, axes = plt.subplots(
        len(sections.categories),
        len(keys),
        figsize=(panel_size * len(keys), panel_size * len(sections.categories)),
        squeeze=False,
    )
    for column, key in enumerate(keys):
        labels = pd.Categorical(adata.obs[key])
        colors = category_colors(len(labels.categories))
        for row, section in enumerate(sections.categories):
            ax = axes[row, column]
            in_section = np.asarray(sections == section)
            codes = labels.codes[in_section]
            ax.scatter(*xy[in_section].T, c=colors[codes], s=size, linewidths=0)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            title = key if library_key is None else f"{key} | {section}"
            ax.set_title(title, fontsize=9)
        if legend and len(labels.categories) <= 40:
            handles = [
                plt.Line2D([], [], marker="o", linestyle="", color=colors[k], label=str(category))
                for k, category in enumerate(labels.categories)
            ]
            axes[0, column].legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    fig.tight_layout()
    return fig
