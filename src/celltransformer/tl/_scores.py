"""Agreement of domains with an annotation, and their spatial coherence."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from sklearn import metrics


def spatial_coherence(labels: np.ndarray, graph: sparse.spmatrix) -> float:
    """Share of graph edges whose two cells carry the same label."""
    coo = sparse.coo_matrix(graph)
    off_diagonal = coo.row != coo.col
    return float(np.mean(labels[coo.row[off_diagonal]] == labels[coo.col[off_diagonal]]))


def score_domains(
    adata: AnnData,
    key: str = "domains",
    truth_key: str = "region",
    exclude: tuple[str, ...] = ("Excluded",),
    spatial_key: str = "spatial_connectivities",
) -> dict[str, float]:
    """Compare domains with an annotation: ARI, NMI, homogeneity and spatial coherence.

    Cells whose truth is missing or in ``exclude`` are left out of ARI, NMI and homogeneity.

    Parameters
    ----------
    adata
        AnnData with domains in ``adata.obs[key]`` and the annotation in ``adata.obs[truth_key]``.
    key
        Column of domains.
    truth_key
        Column of the annotation.
    exclude
        Annotation values that mean "no annotation".
    spatial_key
        Spatial graph in ``adata.obsp`` for the coherence (share of graph neighbours with the same
        domain, over all cells); skipped when absent.

    Returns
    -------
    ``{"ari", "nmi", "homogeneity", "spatial_coherence", "n_cells_scored"}``.
    """
    for column in (key, truth_key):
        if column not in adata.obs:
            raise KeyError(f"{column!r} is not a column of adata.obs (columns: {list(adata.obs.columns)}).")
    truth = adata.obs[truth_key]
    scored = truth.notna().to_numpy() & ~truth.isin(exclude).to_numpy()
    if not scored.any():
        raise ValueError(f"No cell of adata.obs[{truth_key!r}] has an annotation outside {exclude}.")
    predicted = adata.obs[key].to_numpy()[scored]
    reference = truth.to_numpy()[scored]
    scores = {
        "ari": metrics.adjusted_rand_score(reference, predicted),
        "nmi": metrics.normalized_mutual_info_score(reference, predicted),
        "homogeneity": metrics.homogeneity_score(reference, predicted),
        "n_cells_scored": int(scored.sum()),
    }
    if spatial_key in adata.obsp:
        codes = pd.Categorical(adata.obs[key]).codes
        scores["spatial_coherence"] = spatial_coherence(codes, adata.obsp[spatial_key])
    return scores
