"""What makes up each domain: cell-type composition and marker genes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData


class DomainComposition(NamedTuple):
    """Cell-type make-up of every domain, and its marker genes."""

    counts: pd.DataFrame
    """Cells of each type (columns) in each domain (rows)."""
    fractions: pd.DataFrame
    """The same, as fractions of each domain's cells."""
    markers: pd.DataFrame | None
    """scanpy's ``rank_genes_groups`` table of every domain against the rest."""


def _marker_genes(
    adata: AnnData, domain_key: str, layer: str | None, normalize: bool, max_cells_per_domain: int, seed: int
) -> dict:
    """``rank_genes_groups`` on a scratch copy of (a per-domain subsample of) the expression."""
    rng = np.random.default_rng(seed)
    codes = pd.Categorical(adata.obs[domain_key]).codes
    cells = np.sort(
        np.concatenate(
            [
                rng.choice(members, min(len(members), max_cells_per_domain), replace=False)
                for members in (np.flatnonzero(codes == code) for code in np.unique(codes[codes >= 0]))
            ]
        )
    )
    matrix = adata.X if layer is None else adata.layers[layer]
    scratch = AnnData(X=matrix[cells].astype(np.float32), obs=adata.obs[[domain_key]].iloc[cells].copy())
    scratch.var_names = adata.var_names
    if normalize:
        sc.pp.normalize_total(scratch, target_sum=1e4)
        sc.pp.log1p(scratch)
    sc.tl.rank_genes_groups(scratch, groupby=domain_key, method="t-test")
    return scratch.uns["rank_genes_groups"]


def domain_composition(
    adata: AnnData,
    domain_key: str = "domains",
    cell_type_key: str = "cell_type",
    markers: bool = True,
    layer: str | None = None,
    normalize: bool = True,
    max_cells_per_domain: int = 2000,
    seed: int = 0,
) -> DomainComposition:
    """Cell-type composition of every domain and, optionally, its marker genes.

    Parameters
    ----------
    adata
        AnnData with domains in ``adata.obs[domain_key]``.
    domain_key
        Column of domains.
    cell_type_key
        Column of cell types.
    markers
        Also rank genes per domain with :func:`scanpy.tl.rank_genes_groups` (t-test, each domain
        against the rest) on a scratch copy; the user's expression is not changed.
    layer
        Layer of expression for the markers; ``None`` for ``adata.X``.
    normalize
        Normalise counts to 10,000 per cell and log1p-transform before ranking (set ``False``
        when the expression is already log-normalised).
    max_cells_per_domain
        Cells sampled per domain for the markers, which bounds their cost at atlas scale.
    seed
        Seed of that sample.

    Returns
    -------
    Counts, fractions and markers. Writes ``adata.uns[f"{domain_key}_composition"]``
    (``counts`` and ``fractions``) and, with markers, ``adata.uns[f"rank_genes_{domain_key}"]``
    (readable with ``sc.get.rank_genes_groups_df(adata, group=None, key=...)``).
    """
    for key in (domain_key, cell_type_key):
        if key not in adata.obs:
            raise KeyError(f"{key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)}).")
    counts = pd.crosstab(adata.obs[domain_key], adata.obs[cell_type_key])
    fractions = counts.div(counts.sum(axis=1), axis=0)
    adata.uns[f"{domain_key}_composition"] = {"counts": counts, "fractions": fractions}
    table = None
    if markers:
        key = f"rank_genes_{domain_key}"
        adata.uns[key] = _marker_genes(adata, domain_key, layer, normalize, max_cells_per_domain, seed)
        table = sc.get.rank_genes_groups_df(adata, group=None, key=key)
    return DomainComposition(counts=counts, fractions=fractions, markers=table)
