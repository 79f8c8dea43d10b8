"""How evenly batches (animals, runs) spread over domains."""

from __future__ import annotations

import pandas as pd
from anndata import AnnData


def domain_mixing(adata: AnnData, domain_key: str = "domains", batch_key: str = "batch") -> tuple[pd.DataFrame, float]:
    """Share of every batch in every domain, against the batches' overall shares.

    A domain mixes well when its cells come from the batches in the proportions the whole data
    has. The score is one minus the size-weighted mean total-variation distance between each
    domain's batch shares and the overall shares: 1 when every domain has the overall shares,
    lower the more domains are dominated by one batch.

    Parameters
    ----------
    adata
        AnnData with domains and batches in ``adata.obs``.
    domain_key
        Column of domains.
    batch_key
        Column of batches.

    Returns
    -------
    The table of batch shares per domain (with the ``overall`` row and each domain's
    ``distance``), and the mixing score.
    """
    for key in (domain_key, batch_key):
        if key not in adata.obs:
            raise KeyError(f"{key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)}).")
    counts = pd.crosstab(adata.obs[domain_key], adata.obs[batch_key])
    shares = counts.div(counts.sum(axis=1), axis=0)
    overall = counts.sum(axis=0) / counts.to_numpy().sum()
    distance = 0.5 * (shares - overall).abs().sum(axis=1)
    sizes = counts.sum(axis=1) / counts.to_numpy().sum()
    table = shares.assign(distance=distance)
    table.loc["overall"] = [*overall, 0.0]
    return table, float(1.0 - (distance * sizes).sum())
