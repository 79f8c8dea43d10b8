"""The typical distance between neighbouring cells, a unit for graph radii and smoothing."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from sklearn.neighbors import NearestNeighbors

from ._utils import sections_of


def cell_spacing(adata: AnnData, library_key: str | None = None, spatial_key: str = "spatial") -> float:
    """Median distance from a cell to its nearest neighbour, within sections.

    Expressing a graph radius or a smoothing width in this unit makes one recipe work across
    technologies whatever their coordinate units (microns, pixels): for example a radius of
    4 spacings and a smoothing ``sigma`` of 3 spacings.

    Parameters
    ----------
    adata
        AnnData with coordinates in ``adata.obsm[spatial_key]``.
    library_key
        Column of ``adata.obs`` with sections, whose coordinates may overlap.
    spatial_key
        Key of the coordinates in ``adata.obsm``.

    Returns
    -------
    The median nearest-neighbour distance, in coordinate units.
    """
    coordinates = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    distances = []
    for cells in sections_of(adata, library_key):
        if len(cells) > 1:
            points = coordinates[cells]
            distances.append(NearestNeighbors(n_neighbors=2).fit(points).kneighbors(points)[0][:, 1])
    if not distances:
        raise ValueError("cell_spacing needs a section with at least two cells.")
    return float(np.median(np.concatenate(distances)))
