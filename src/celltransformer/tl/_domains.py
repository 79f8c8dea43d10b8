"""Spatial domains: clustering neighbourhood embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from sklearn.cluster import MiniBatchKMeans

from ._utils import representation


def domains(
    adata: AnnData,
    n_domains: int,
    use_rep: str = "X_celltransformer",
    key_added: str = "domains",
    seed: int = 0,
    batch_size: int = 4096,
) -> None:
    """Cluster an embedding into spatial domains with minibatch k-means.

    One clustering spans all sections, so a domain label means the same thing in every section.

    Parameters
    ----------
    adata
        AnnData with the embedding in ``adata.obsm[use_rep]``.
    n_domains
        Number of domains (clusters).
    use_rep
        Key of the embedding in ``adata.obsm``.
    key_added
        Domains are written to ``adata.obs[key_added]`` (categorical).
    seed
        Seed of the clustering.
    batch_size
        Cells per k-means minibatch.
    """
    if n_domains < 1:
        raise ValueError(f"n_domains must be at least 1, got {n_domains}.")
    embedding = representation(adata, use_rep)
    kmeans = MiniBatchKMeans(n_clusters=n_domains, batch_size=batch_size, random_state=seed, n_init=3)
    labels = kmeans.fit_predict(embedding)
    adata.obs[key_added] = pd.Categorical(labels.astype(str), categories=[str(k) for k in range(n_domains)])
