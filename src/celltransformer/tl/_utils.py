"""Shared input handling of the tools."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData


def representation(adata: AnnData, use_rep: str) -> np.ndarray:
    """``adata.obsm[use_rep]`` as ``float32``, with a helpful error when it is missing."""
    if use_rep not in adata.obsm:
        raise KeyError(
            f"adata.obsm[{use_rep!r}] does not exist (obsm holds {list(adata.obsm.keys())}). "
            "Compute the embedding first, e.g. `model.embed(adata)` for 'X_celltransformer'."
        )
    return np.asarray(adata.obsm[use_rep], dtype=np.float32)


def sections_of(adata: AnnData, library_key: str | None) -> list[np.ndarray]:
    """Cell positions of every section (all cells when ``library_key`` is ``None``)."""
    if library_key is None:
        return [np.arange(adata.n_obs)]
    if library_key not in adata.obs:
        raise KeyError(f"library_key={library_key!r} is not a column of adata.obs.")
    codes = pd.Categorical(adata.obs[library_key]).codes
    return [np.flatnonzero(codes == code) for code in np.unique(codes)]
