"""Stability of domains against their number."""

from __future__ import annotations

import matplotlib.pyplot as plt
from anndata import AnnData
from matplotlib.figure import Figure


def domain_stability(adata: AnnData, key: str = "domain_stability") -> Figure:
    """Mean pairwise ARI of repeated clusterings against the number of domains.

    Reads the result of :func:`celltransformer.tl.domain_stability`; error bars are one standard
    deviation, the dashed line marks the suggested number of domains.

    Parameters
    ----------
    adata
        AnnData after :func:`celltransformer.tl.domain_stability`.
    key
        Its ``key_added``.

    Returns
    -------
    The figure.
    """
    if key not in adata.uns:
        raise KeyError(f"adata.uns[{key!r}] is missing; run `ct.tl.domain_stability(adata, n_domains=[...])` first.")
    table, suggested = adata.uns[key]["table"], adata.uns[key]["suggested_n_domains"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar(table["n_domains"], table["mean_ari"], yerr=table["std_ari"], marker="o", capsize=3)
    ax.axvline(suggested, color="grey", linestyle="--", label=f"suggested: {suggested}")
    ax.set_xlabel("number of domains")
    ax.set_ylabel("pairwise ARI of repeated clusterings")
    ax.set_ylim(top=1.02)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
