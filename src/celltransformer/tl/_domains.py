"""Spatial domains: clustering neighbourhood embeddings, at one or several nested resolutions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from sklearn.cluster import KMeans

from ._kmeans import minibatch_kmeans
from ._utils import representation


def _categorical(labels: np.ndarray, n_categories: int) -> pd.Categorical:
    return pd.Categorical(labels.astype(str), categories=[str(k) for k in range(n_categories)])


def coarsen(centers: np.ndarray, sizes: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Group ``centers`` (weighted by ``sizes``) into ``k`` coarser domains.

    Returns the parent domain of every centre and the coarse centres.
    """
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(centers, sample_weight=np.maximum(sizes, 1e-12))
    return kmeans.labels_, kmeans.cluster_centers_


def _kmeans_domains(
    embedding: np.ndarray, resolutions: list[int], seed: int, batch_size: int, device
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Labels and centres per resolution: k-means at the finest, each coarser level nested in it."""
    finest = minibatch_kmeans(embedding, resolutions[0], seed=seed, batch_size=batch_size, device=device)
    results = {resolutions[0]: (finest.labels, finest.centers)}
    labels, centers = finest.labels, finest.centers
    for k in resolutions[1:]:
        sizes = np.bincount(labels, minlength=len(centers)).astype(float)
        parents, centers = coarsen(centers, sizes, k, seed)
        labels = parents[labels]
        results[k] = (labels, centers)
    return results


def leiden_domains(
    embedding: np.ndarray,
    n_domains: int | None,
    resolution: float | None,
    seed: int,
    n_neighbors: int = 15,
    max_iterations: int = 20,
) -> np.ndarray:
    """Leiden clusters of a kNN graph of the embedding (on a scratch AnnData, not the user's).

    With ``n_domains``, the resolution is bisected until Leiden finds that many clusters (or the
    closest count reached within ``max_iterations``).
    """
    scratch = AnnData(obs=pd.DataFrame(index=np.arange(len(embedding)).astype(str)))
    scratch.obsm["X_rep"] = embedding
    sc.pp.neighbors(scratch, n_neighbors=n_neighbors, use_rep="X_rep", random_state=seed)

    def cluster(res: float) -> np.ndarray:
        sc.tl.leiden(scratch, resolution=res, random_state=seed, flavor="igraph", n_iterations=2, directed=False)
        return scratch.obs["leiden"].cat.codes.to_numpy()

    if n_domains is None:
        return cluster(1.0 if resolution is None else resolution)
    low, high = 0.0, 1.0
    while len(np.unique(cluster(high))) < n_domains and high < 1e3:
        low, high = high, high * 2
    best = cluster(high)
    for _ in range(max_iterations):
        middle = (low + high) / 2
        labels = cluster(middle)
        found = len(np.unique(labels))
        if abs(found - n_domains) < abs(len(np.unique(best)) - n_domains):
            best = labels
        if found == n_domains:
            break
        low, high = (middle, high) if found < n_domains else (low, middle)
    return best


def domains(
    adata: AnnData,
    n_domains: int | Sequence[int] | None = None,
    use_rep: str = "X_celltransformer",
    key_added: str = "domains",
    seed: int = 0,
    method: Literal["kmeans", "leiden"] = "kmeans",
    resolution: float | None = None,
    batch_size: int = 8192,
    device: str | None = None,
) -> None:
    """Cluster an embedding into spatial domains.

    One clustering spans all sections, so a domain label means the same thing in every section.
    The default, minibatch k-means, handles tens of millions of cells on one machine and runs on
    the GPU when there is one. A list of ``n_domains`` clusters at the finest resolution and
    groups its domains (weighted by size) into each coarser one, so that every fine domain lies in
    exactly one coarse domain. ``method="leiden"`` clusters a kNN graph of the embedding instead
    (for small data).

    Parameters
    ----------
    adata
        AnnData with the embedding in ``adata.obsm[use_rep]``.
    n_domains
        Number of domains, or several numbers for nested resolutions. For Leiden it may be
        ``None`` (then ``resolution`` decides).
    use_rep
        Key of the embedding in ``adata.obsm``.
    key_added
        One resolution writes ``adata.obs[key_added]``; several write
        ``adata.obs[f"{key_added}_{k}"]`` for each ``k``. Parameters, centres (k-means) and the
        coarse domain of every fine domain go to ``adata.uns[key_added]``.
    seed
        Seed of the clustering.
    method
        ``"kmeans"`` (minibatch k-means) or ``"leiden"``.
    resolution
        Leiden resolution when ``n_domains`` is ``None``.
    batch_size
        Cells per k-means minibatch.
    device
        ``"cpu"`` or ``"cuda"``; by default the GPU when torch sees one.
    """
    resolutions = sorted({int(k) for k in np.atleast_1d(n_domains)}, reverse=True) if n_domains is not None else []
    if method == "kmeans" and not resolutions:
        raise ValueError("k-means needs n_domains (an int, or a list of ints for several resolutions).")
    if method not in ("kmeans", "leiden"):
        raise ValueError(f"method must be 'kmeans' or 'leiden', got {method!r}.")
    if any(k < 1 for k in resolutions):
        raise ValueError(f"Every n_domains must be at least 1, got {resolutions}.")
    embedding = representation(adata, use_rep)
    several = np.ndim(n_domains) > 0
    info: dict = {"method": method, "use_rep": use_rep, "seed": seed}
    if method == "leiden":
        if several:
            raise ValueError("Leiden gives one resolution per call; pass one n_domains (or none and a resolution).")
        labels = leiden_domains(embedding, resolutions[0] if resolutions else None, resolution, seed)
        adata.obs[key_added] = _categorical(labels, labels.max() + 1)
        adata.uns[key_added] = info
        return
    results = _kmeans_domains(embedding, resolutions, seed, batch_size, device)
    info["n_domains"] = resolutions
    info["centers"] = {str(k): centers for k, (_, centers) in results.items()}
    for k, (labels, _) in results.items():
        adata.obs[f"{key_added}_{k}" if several else key_added] = _categorical(labels, k)
    if several:
        info["parents"] = {
            f"{fine}->{coarse}": _parent_of_each(results[fine][0], results[coarse][0], fine)
            for fine, coarse in zip(resolutions[:-1], resolutions[1:], strict=True)
        }
    adata.uns[key_added] = info


def _parent_of_each(fine: np.ndarray, coarse: np.ndarray, n_fine: int) -> np.ndarray:
    """The coarse domain of every fine domain (``-1`` for an empty fine domain)."""
    parents = np.full(n_fine, -1)
    parents[fine] = coarse
    return parents
