"""Checks of user input, each failing with a message that says what is wrong and how to fix it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._expression import is_on_disk, row_blocks

MAX_UNIQUE_NON_CATEGORICAL = 1_000

_GRAPH_HINT = (
    "Build it with squidpy first, for example "
    "`sq.gr.spatial_neighbors_radius(adata, radius=50.0, library_key='section')` "
    "(any squidpy builder works: radius, kNN or Delaunay)."
)


def validate_not_view(adata: AnnData) -> None:
    """Check that ``adata`` is not a view, which cannot take the keys that setup writes."""
    if adata.is_view:
        raise ValueError(
            "adata is a view of another AnnData (the result of subsetting, e.g. `adata[mask]`), and "
            "setup_anndata writes its bookkeeping keys into adata, which a view cannot hold. Make "
            "the subset an AnnData of its own first: `adata = adata[mask].copy()`."
        )


def validate_spatial_graph(adata: AnnData, spatial_key: str) -> None:
    """Check that ``adata.obsp[spatial_key]`` exists and is sparse.

    anndata itself refuses a graph whose shape is not ``(n_obs, n_obs)``, naming both shapes.
    """
    if spatial_key not in adata.obsp:
        present = list(adata.obsp.keys())
        raise KeyError(
            f"No spatial graph in adata.obsp[{spatial_key!r}] (adata.obsp holds {present}). "
            f"{_GRAPH_HINT} Pass spatial_key= if the graph is stored under another key."
        )
    graph = adata.obsp[spatial_key]
    if not sparse.issparse(graph):
        raise TypeError(
            f"adata.obsp[{spatial_key!r}] is a dense {type(graph).__name__}; the spatial graph must "
            "be a scipy sparse matrix. Convert it with "
            f"`adata.obsp[{spatial_key!r}] = scipy.sparse.csr_matrix(adata.obsp[{spatial_key!r}])`."
        )


def validate_sections(
    graph: sparse.spmatrix, sections: np.ndarray, spatial_key: str, library_key: str, rows_per_block: int = 100_000
) -> None:
    """Check that no edge of the graph links cells of different sections (block by block of rows).

    Reads the CSR index arrays in place, so the memory it needs is bounded by one block's edges.
    """
    codes = pd.Categorical(sections).codes
    csr = sparse.csr_matrix(graph)
    crossing = 0
    for start in range(0, csr.shape[0], rows_per_block):
        stop = min(start + rows_per_block, csr.shape[0])
        rows = np.repeat(np.arange(start, stop), np.diff(csr.indptr[start : stop + 1]))
        columns = csr.indices[csr.indptr[start] : csr.indptr[stop]]
        crossing += np.count_nonzero(codes[rows] != codes[columns])
    if crossing:
        raise ValueError(
            f"{crossing} edges of adata.obsp[{spatial_key!r}] link cells of different sections of "
            f"adata.obs[{library_key!r}], so neighbourhoods would mix sections. Rebuild the graph "
            f"section by section: `sq.gr.spatial_neighbors_radius(adata, radius=..., library_key={library_key!r})`."
        )


def validate_obs_column(adata: AnnData, key: str, argument: str) -> None:
    """Check that ``adata.obs[key]`` exists, has no missing values and looks categorical."""
    if key not in adata.obs:
        raise KeyError(
            f"{argument}={key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)})."
        )
    column = adata.obs[key]
    n_missing = int(column.isna().sum())
    if n_missing:
        raise ValueError(
            f"adata.obs[{key!r}] has {n_missing} missing values. Give those cells a label (for "
            f"example 'unknown') or drop them: `adata = adata[adata.obs[{key!r}].notna()].copy()`."
        )
    if not isinstance(column.dtype, pd.CategoricalDtype):
        n_unique = column.nunique()
        if n_unique > MAX_UNIQUE_NON_CATEGORICAL:
            raise ValueError(
                f"adata.obs[{key!r}] is not categorical and has {n_unique} distinct values, which "
                f"looks like the wrong column for {argument}. Pick a column of labels, or convert "
                f"it on purpose with `adata.obs[{key!r}] = adata.obs[{key!r}].astype('category')`."
            )


def validate_shape(adata: AnnData) -> None:
    """Check that ``adata`` has at least one cell and one gene."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(
            f"adata has {adata.n_obs} cells and {adata.n_vars} genes; CellTransformer needs at least "
            "one of each. Check the filtering or subsetting that produced it."
        )


def validate_layer(adata: AnnData, layer: str | None) -> None:
    """Check that the matrix to register, ``adata.layers[layer]`` or ``adata.X``, exists."""
    if layer is None and adata.X is None:
        raise ValueError(
            f"adata.X is empty. Register the layer that holds the raw counts with `layer=...` "
            f"(adata.layers holds {list(adata.layers.keys())})."
        )
    if layer is not None and layer not in adata.layers:
        raise KeyError(
            f"layer={layer!r} is not a layer of adata (adata.layers holds {list(adata.layers.keys())}). "
            "Pass the layer that holds the raw counts, or `layer=None` for adata.X."
        )


def validate_row_access(matrix, where: str) -> None:
    """Check that rows of an on-disk count matrix can be read efficiently (CSR or dense)."""
    if is_on_disk(matrix) and getattr(matrix, "format", None) == "csc":
        raise TypeError(
            f"{where} is a CSC matrix on disk (backed AnnData); reading a batch of cells would read "
            "most of the file. Rewrite it as CSR once: `adata = adata.to_memory(); adata.X = "
            "scipy.sparse.csr_matrix(adata.X); adata.write_h5ad(path)`, then open it backed again."
        )


def _first_names(names: pd.Index, n_shown: int = 5) -> str:
    return str(list(names[:n_shown])) + ("..." if len(names) > n_shown else "")


def validate_same_genes(genes: pd.Index, model_genes: np.ndarray) -> None:
    """Check that ``genes`` are the genes a model was trained on, in the training order."""
    if np.array_equal(np.asarray(genes), np.asarray(model_genes)):
        return
    model_genes = pd.Index(model_genes)
    missing, extra = model_genes.difference(genes), pd.Index(genes).difference(model_genes)
    select = "Select and order them as in training: `adata = adata[:, model_genes].copy()`."
    if len(missing):
        problem = f"lacks {len(missing)} of them ({_first_names(missing)})"
        remedy = "The model needs every gene it was trained on; train a model on the genes of this data instead."
    elif len(extra):
        problem = f"has {len(extra)} genes the model was not trained on ({_first_names(extra)})"
        remedy = select
    else:
        problem = "has them in another order"
        remedy = select
    raise ValueError(
        f"adata's genes differ from the {len(model_genes)} genes the model was trained on: adata "
        f"{problem}. {remedy} The model's genes are "
        "`model_genes = model.registry['field_registries']['X']['state_registry']['column_names']` "
        "(for a saved model, `model = CellTransformer.load(path, adata=False)`). Cell types the "
        "model has not seen are another matter: `CellTransformer.load_query_data(adata, model)`."
    )


def _check_values(values: np.ndarray, where: str, is_log1p: bool) -> None:
    if not np.isfinite(values).all():
        raise ValueError(
            f"{where} contains NaN or infinite values. Counts must be finite; fix or remove the "
            "affected cells before setup."
        )
    if (values < 0).any():
        raise ValueError(
            f"{where} contains negative values, so it does not hold counts (scaled or centred "
            "data?). Register the raw counts, e.g. `layer='counts'`."
        )
    if not is_log1p and (np.mod(values, 1) != 0).any():
        raise ValueError(
            f"{where} contains non-integer values, so it does not hold raw counts. Register the "
            "raw counts with `layer=...`, or, if it holds log1p(counts), say so with "
            "`expression_is_log1p=True` (counts are then recovered as expm1)."
        )


def validate_counts(matrix, where: str, is_log1p: bool) -> None:
    """Check that ``matrix`` holds finite, non-negative counts (integers unless ``is_log1p``).

    The matrix is read block by block of cells, so an on-disk matrix is checked in one pass
    without loading it. Cells or genes without any count only raise a warning: such a cell still
    gets an embedding and such a gene is predicted to be zero.
    """
    cell_totals, gene_totals = [], np.zeros(matrix.shape[1])
    for block in row_blocks(matrix):
        _check_values(block.data if sparse.issparse(block) else np.asarray(block).ravel(), where, is_log1p)
        cell_totals.append(np.asarray(block.sum(axis=1)).ravel())
        gene_totals += np.asarray(block.sum(axis=0)).ravel()
    _warn_empty(np.concatenate(cell_totals) if cell_totals else np.zeros(0), gene_totals, where)


def _warn_empty(cell_totals: np.ndarray, gene_totals: np.ndarray, where: str) -> None:
    n_empty_cells = int(np.count_nonzero(cell_totals == 0))
    n_empty_genes = int(np.count_nonzero(gene_totals == 0))
    if n_empty_cells:
        warnings.warn(
            f"{n_empty_cells} cells have no counts in {where}. They are kept: they still get an "
            "embedding, and as neighbours they contribute their cell type and an all-zero profile. "
            "Filter them with `sc.pp.filter_cells(adata, min_counts=1)` if they are artefacts.",
            UserWarning,
            stacklevel=3,
        )
    if n_empty_genes:
        warnings.warn(
            f"{n_empty_genes} genes have no counts in {where}. They are kept and the model learns "
            "to predict zero for them; remove them with `sc.pp.filter_genes(adata, min_counts=1)`.",
            UserWarning,
            stacklevel=3,
        )
