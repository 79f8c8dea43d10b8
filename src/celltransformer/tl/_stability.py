"""How stable domains are under reclustering, to choose their number."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from anndata import AnnData
from sklearn.metrics import adjusted_rand_score

from ._kmeans import assign, default_device, minibatch_kmeans
from ._utils import representation


def domain_stability(
    adata: AnnData,
    n_domains: Sequence[int],
    use_rep: str = "X_celltransformer",
    n_repeats: int = 5,
    subsample: float = 0.8,
    seed: int = 0,
    tolerance: float = 0.02,
    key_added: str = "domain_stability",
    batch_size: int = 8192,
    device: str | None = None,
) -> pd.DataFrame:
    """Repeat the clustering per candidate number of domains and measure its agreement.

    For every ``k``, ``n_repeats`` minibatch k-means runs are fitted on different random
    subsamples with different seeds; every run labels all cells (nearest centre) and the runs are
    compared pairwise by the adjusted Rand index. Stable numbers of domains give high, tight ARIs.
    The suggested ``k`` is the largest whose mean ARI is within ``tolerance`` of the best.

    Parameters
    ----------
    adata
        AnnData with the embedding in ``adata.obsm[use_rep]``.
    n_domains
        Candidate numbers of domains.
    use_rep
        Key of the embedding in ``adata.obsm``.
    n_repeats
        Clusterings per candidate.
    subsample
        Fraction of cells each clustering is fitted on.
    seed
        Seed of the subsamples and clusterings.
    tolerance
        How much lower than the best mean ARI the suggested ``k`` may be.
    key_added
        The table and the suggestion go to ``adata.uns[key_added]``.
    batch_size, device
        See :func:`celltransformer.tl.domains`.

    Returns
    -------
    One row per candidate: ``n_domains``, ``mean_ari``, ``std_ari``, ``min_ari``.
    """
    if n_repeats < 2:
        raise ValueError(f"n_repeats must be at least 2 to compare clusterings, got {n_repeats}.")
    if not 0 < subsample <= 1:
        raise ValueError(f"subsample must be in (0, 1], got {subsample}.")
    embedding = representation(adata, use_rep)
    device = default_device() if device is None else device
    rows = []
    for k in sorted(set(int(k) for k in n_domains)):
        runs = []
        for repeat in range(n_repeats):
            rng = np.random.default_rng([seed, k, repeat])
            cells = np.sort(rng.choice(adata.n_obs, max(k, int(subsample * adata.n_obs)), replace=False))
            fitted = minibatch_kmeans(embedding[cells], k, seed=int(rng.integers(2**31)), batch_size=batch_size, device=device)
            runs.append(assign(embedding, fitted.centers, device)[0])
        scores = [adjusted_rand_score(a, b) for a, b in combinations(runs, 2)]
        rows.append({"n_domains": k, "mean_ari": np.mean(scores), "std_ari": np.std(scores), "min_ari": np.min(scores)})
    table = pd.DataFrame(rows)
    good = table[table["mean_ari"] >= table["mean_ari"].max() - tolerance]
    suggested = int(good["n_domains"].max())
    adata.uns[key_added] = {"table": table, "suggested_n_domains": suggested, "use_rep": use_rep}
    return table
