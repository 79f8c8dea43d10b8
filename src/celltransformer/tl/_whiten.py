"""Principal components of an embedding, scaled to equal variance."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from ._utils import representation

ROWS_PER_CHUNK = 200_000


def whiten(
    adata: AnnData, use_rep: str = "X_celltransformer", n_comps: int = 20, key_added: str | None = None
) -> None:
    """Project an embedding on its leading principal components, each scaled to unit variance.

    A few directions of the neighbourhood embedding (the cell types) carry most of its variance;
    whitening gives the next ones, where finer spatial structure lives, an equal say in
    smoothing and clustering. The covariance is accumulated chunk by chunk of cells, so memory
    stays at one chunk beyond the result, also for millions of cells.

    Parameters
    ----------
    adata
        AnnData with the embedding in ``adata.obsm[use_rep]``.
    use_rep
        Key of the embedding in ``adata.obsm``.
    n_comps
        Principal components kept.
    key_added
        Written to ``adata.obsm[key_added]``; defaults to ``f"{use_rep}_white"``.
    """
    embedding = representation(adata, use_rep)
    if not 1 <= n_comps <= embedding.shape[1]:
        raise ValueError(f"n_comps must be between 1 and the embedding's width {embedding.shape[1]}, got {n_comps}.")
    mean = embedding.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((embedding.shape[1], embedding.shape[1]))
    for start in range(0, len(embedding), ROWS_PER_CHUNK):
        centred = embedding[start : start + ROWS_PER_CHUNK] - mean
        covariance += centred.T @ centred
    covariance /= max(len(embedding) - 1, 1)
    variances, axes = np.linalg.eigh(covariance)
    leading = np.argsort(variances)[::-1][:n_comps]
    projection = axes[:, leading] / np.sqrt(np.maximum(variances[leading], 1e-12))
    white = np.empty((len(embedding), n_comps), dtype=np.float32)
    for start in range(0, len(embedding), ROWS_PER_CHUNK):
        white[start : start + ROWS_PER_CHUNK] = (embedding[start : start + ROWS_PER_CHUNK] - mean) @ projection
    adata.obsm[key_added or f"{use_rep}_white"] = white
