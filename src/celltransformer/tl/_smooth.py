"""Gaussian smoothing of an embedding over space, section by section."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

from ._utils import representation, sections_of


def gaussian_weights(coordinates: np.ndarray, query: np.ndarray, sigma: float, truncate: float) -> sparse.csr_matrix:
    """Row-normalised Gaussian weights from each ``query`` point to the ``coordinates`` within ``truncate * sigma``."""
    search = NearestNeighbors(radius=truncate * sigma).fit(coordinates)
    distances, neighbors = search.radius_neighbors(query, return_distance=True)
    counts = np.fromiter((len(n) for n in neighbors), dtype=np.int64, count=len(neighbors))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    distances = np.concatenate(distances) if len(distances) else np.zeros(0)
    indices = np.concatenate(neighbors) if len(neighbors) else np.zeros(0, dtype=np.int64)
    weights = np.exp(-0.5 * (distances / sigma) ** 2)
    matrix = sparse.csr_matrix((weights, indices, indptr), shape=(len(query), len(coordinates)))
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    return sparse.diags(1.0 / totals) @ matrix


def smooth(
    adata: AnnData,
    use_rep: str = "X_celltransformer",
    sigma: float = 40.0,
    library_key: str | None = None,
    spatial_key: str = "spatial",
    key_added: str | None = None,
    truncate: float = 3.0,
    chunk_size: int = 50_000,
) -> None:
    """Smooth an embedding over space with a Gaussian kernel, within each section.

    Each cell's smoothed embedding is the Gaussian-weighted mean of the embeddings of the cells of
    its section within ``truncate * sigma`` (itself included). Cells are processed in chunks, so
    memory stays bounded for millions of cells.

    Parameters
    ----------
    adata
        AnnData with the embedding in ``adata.obsm[use_rep]`` and coordinates in
        ``adata.obsm[spatial_key]``.
    use_rep
        Key of the embedding in ``adata.obsm``.
    sigma
        Standard deviation of the Gaussian, in coordinate units (microns for most data).
    library_key
        Column of ``adata.obs`` with sections; cells of other sections never mix.
    spatial_key
        Key of the coordinates in ``adata.obsm``.
    key_added
        Written to ``adata.obsm[key_added]``; defaults to ``f"{use_rep}_smoothed"``.
    truncate
        Neighbours farther than ``truncate * sigma`` are ignored.
    chunk_size
        Cells processed at once.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive (in coordinate units), got {sigma}.")
    embedding = representation(adata, use_rep)
    coordinates = np.asarray(adata.obsm[spatial_key], dtype=np.float64)
    smoothed = np.empty_like(embedding)
    for cells in sections_of(adata, library_key):
        section_coordinates = coordinates[cells]
        for start in range(0, len(cells), chunk_size):
            chunk = cells[start : start + chunk_size]
            weights = gaussian_weights(section_coordinates, coordinates[chunk], sigma, truncate)
            smoothed[chunk] = weights @ embedding[cells]
    adata.obsm[key_added or f"{use_rep}_smoothed"] = smoothed
