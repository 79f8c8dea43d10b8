"""Every bad input the package refuses or warns about, by name, each with a clear message.

A message says what is wrong and how to fix it. A case takes a fresh copy of the small synthetic
tissue and returns the AnnData it hands to the package together with the call that must fail.
The test checks the error and its message, and that the failing call left that AnnData exactly
as it was: the check ran before any work.
"""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from conftest import SAVED_MODEL, TINY_MODEL, changed_slots, make_tissue
from scipy import sparse

import celltransformer as ct

SETUP = {"layer": "counts", "cell_type_key": "cell_type", "library_key": "section"}


def setup(adata, **changes):
    ct.CellTransformer.setup_anndata(adata, **{**SETUP, **changes})


def changed(adata, change):
    """The tissue after ``change``, which edits it in place or returns a new AnnData."""
    if change is None:
        return adata
    new = change(adata)
    return adata if new is None else new


def setup_after(change=None, **changes):
    """Set up the tissue after ``change`` (see :func:`changed`), with ``changes`` to the setup arguments."""

    def prepare(adata):
        adata = changed(adata, change)
        return adata, lambda: setup(adata, **changes)

    return prepare


def model_on(adata, **arguments):
    setup(adata)
    return ct.CellTransformer(adata, **{**TINY_MODEL, **arguments})


def model_with(**arguments):
    def prepare(adata):
        setup(adata)
        return adata, lambda: ct.CellTransformer(adata, **{**TINY_MODEL, **arguments})

    return prepare


def training_with(max_epochs=1, **arguments):
    def prepare(adata):
        model = model_on(adata)
        return adata, lambda: model.train(max_epochs=max_epochs, accelerator="cpu", **arguments)

    return prepare


def inference_with(**arguments):
    def prepare(adata):
        model = model_on(adata)
        return adata, lambda: model.get_latent_representation(**arguments)

    return prepare


def load_onto(change):
    """Load the committed saved model onto the tissue after ``change`` (see :func:`changed`)."""

    def prepare(adata):
        adata = changed(adata, change)
        return adata, lambda: ct.CellTransformer.load(SAVED_MODEL, adata=adata, accelerator="cpu")

    return prepare


def with_embedding(tool, **arguments):
    def prepare(adata):
        adata.obsm["X_celltransformer"] = np.zeros((adata.n_obs, 4), dtype=np.float32)
        return adata, lambda: tool(adata, **arguments)

    return prepare


def count_set_to(value, dense=False):
    def change(adata):
        counts = adata.layers["counts"].toarray()
        counts[0, 0] = value
        adata.layers["counts"] = counts if dense else sparse.csr_matrix(counts)

    return change


def storing_graph_of_shape(shape_of_n_obs):
    """anndata refuses to store (or read) a graph whose shape is not ``(n_obs, n_obs)``."""

    def prepare(adata):
        graph = sparse.csr_matrix(shape_of_n_obs(adata.n_obs))
        return adata, lambda: adata.obsp.__setitem__("spatial_connectivities", graph)

    return prepare


def without_graph(adata):
    del adata.obsp["spatial_connectivities"]


def dense_graph(adata):
    adata.obsp["spatial_connectivities"] = adata.obsp["spatial_connectivities"].toarray()


def alternating_sections(adata):
    adata.obs["section"] = pd.Categorical(np.arange(adata.n_obs) % 2)


def empty_x(adata):
    adata.X = None


def cell_types_with_nan(adata):
    cell_types = adata.obs["cell_type"].astype(object)
    cell_types.iloc[:3] = np.nan
    adata.obs["cell_type"] = cell_types


def cell_ids_as_cell_types(adata):
    adata = make_tissue(n_cells=1200, n_sections=1)
    adata.obs["cell_type"] = adata.obs_names.to_numpy()
    return adata


def renamed_first_gene(adata):
    adata.var_names = ["renamed", *adata.var_names[1:]]


def with_extra_gene(adata):
    counts = sparse.hstack([adata.layers["counts"], adata.layers["counts"][:, :1]]).tocsr()
    var = pd.DataFrame(index=[*adata.var_names, "extra_gene"])
    return AnnData(counts, obs=adata.obs, var=var, layers={"counts": counts}, obsp=dict(adata.obsp))


def with_unseen_cell_type(adata):
    adata.obs["cell_type"] = adata.obs["cell_type"].cat.add_categories(["novel"])
    adata.obs.iloc[0, adata.obs.columns.get_loc("cell_type")] = "novel"


def embedding_of_reordered_genes(adata):
    reordered = adata[:, ::-1].copy()
    model = model_on(adata)
    return reordered, lambda: model.get_latent_representation(reordered)


def setup_of_a_view(adata):
    view = adata[: adata.n_obs // 2]
    return view, lambda: setup(view)


ERRORS = [
    # The spatial graph
    pytest.param(
        setup_after(without_graph), KeyError, r"No spatial graph.*sq\.gr\.spatial_neighbors", id="graph-missing"
    ),
    pytest.param(setup_after(spatial_key="neighbours"), KeyError, r"spatial_key=", id="graph-under-another-key"),
    pytest.param(setup_after(dense_graph), TypeError, r"dense ndarray.*scipy\.sparse", id="graph-not-sparse"),
    pytest.param(
        storing_graph_of_shape(lambda n: (n, n + 1)), ValueError, r"obsp must match.*\(600, 601\)",
        id="graph-not-square",
    ),
    pytest.param(
        storing_graph_of_shape(lambda n: (n + 5, n + 5)), ValueError, r"obsp must match.*\(605, 605\)",
        id="graph-shape-not-n-obs",
    ),
    pytest.param(
        setup_after(alternating_sections), ValueError, r"link cells of different sections.*library_key=",
        id="graph-across-sections",
    ),
    # The count matrix
    pytest.param(setup_after(layer="raw"), KeyError, r"not a layer.*layer=None", id="layer-missing"),
    pytest.param(setup_after(empty_x, layer=None), ValueError, r"adata\.X is empty.*layer=", id="x-empty"),
    pytest.param(setup_after(count_set_to(-1.0)), ValueError, r"negative values.*raw counts", id="counts-negative"),
    pytest.param(setup_after(count_set_to(np.nan)), ValueError, r"NaN or infinite", id="counts-nan"),
    pytest.param(setup_after(count_set_to(np.inf)), ValueError, r"NaN or infinite", id="counts-infinite"),
    pytest.param(
        setup_after(count_set_to(np.nan, dense=True)), ValueError, r"NaN or infinite", id="counts-nan-dense"
    ),
    pytest.param(setup_after(count_set_to(-2.0, dense=True)), ValueError, r"negative", id="counts-negative-dense"),
    pytest.param(
        setup_after(count_set_to(2.5)), ValueError, r"non-integer.*expression_is_log1p=True", id="counts-non-integer"
    ),
    pytest.param(
        setup_after(count_set_to(-0.5), expression_is_log1p=True), ValueError, r"negative values", id="log1p-negative"
    ),
    pytest.param(setup_after(lambda adata: adata[:, :0].copy()), ValueError, r"0 genes", id="no-genes"),
    pytest.param(setup_after(lambda adata: adata[:0].copy()), ValueError, r"0 cells", id="no-cells"),
    pytest.param(setup_of_a_view, ValueError, r"is a view.*adata\[mask\]\.copy\(\)", id="setup-on-a-view"),
    # Cell types and sections
    pytest.param(
        setup_after(cell_type_key="celltype"), KeyError, r"cell_type_key='celltype' is not a column",
        id="cell-type-key-missing",
    ),
    pytest.param(setup_after(cell_types_with_nan), ValueError, r"3 missing values.*notna", id="cell-type-nan"),
    pytest.param(
        setup_after(cell_ids_as_cell_types), ValueError, r"1200 distinct values.*wrong column",
        id="cell-type-column-of-unique-ids",
    ),
    pytest.param(setup_after(library_key="slice"), KeyError, r"library_key='slice'", id="library-key-missing"),
    pytest.param(setup_after(batch_key="animal"), KeyError, r"batch_key='animal'", id="batch-key-missing"),
    # A saved model loaded onto other data
    pytest.param(
        load_onto(lambda adata: adata[:, ::-1].copy()), ValueError, r"another order.*adata\[:, model_genes\]",
        id="load-genes-reordered",
    ),
    pytest.param(
        load_onto(lambda adata: adata[:, :70].copy()), ValueError, r"lacks 10 of them", id="load-genes-missing"
    ),
    pytest.param(
        load_onto(renamed_first_gene), ValueError, r"lacks 1 of them \(\['gene_0'\]", id="load-gene-renamed"
    ),
    pytest.param(
        load_onto(with_extra_gene), ValueError, r"1 genes the model was not trained on.*model_genes",
        id="load-extra-gene",
    ),
    pytest.param(
        load_onto(with_unseen_cell_type), ValueError, r"not seen in training.*'novel'.*load_query_data",
        id="load-unseen-cell-type",
    ),
    pytest.param(embedding_of_reordered_genes, ValueError, r"another order", id="embed-genes-reordered"),
    # Arguments
    pytest.param(
        model_with(max_neighbors=0), ValueError, r"max_neighbors must be at least 1", id="max-neighbors-zero"
    ),
    pytest.param(
        model_with(d_model=30, n_heads=4), ValueError, r"divisible by n_heads", id="heads-not-dividing-d-model"
    ),
    pytest.param(model_with(attention="flash"), ValueError, r"'fast' or 'dense'", id="attention-unknown"),
    pytest.param(model_with(dropout=1.5), ValueError, r"dropout probability", id="dropout-above-one"),
    pytest.param(training_with(batch_size=0), ValueError, r"batch_size must be at least 1", id="batch-size-zero"),
    pytest.param(training_with(max_epochs=0), ValueError, r"max_epochs must be at least 1", id="max-epochs-zero"),
    pytest.param(training_with(train_size=0.0), ValueError, r"train_size must be in", id="train-size-zero"),
    pytest.param(
        training_with(train_size=0.8, validation_size=0.5), ValueError, r"validation_size must be in",
        id="split-over-one",
    ),
    pytest.param(
        training_with(num_workers=-1), ValueError, r"num_workers must be at least 0", id="num-workers-negative"
    ),
    pytest.param(training_with(plan_kwargs={"lr": -1e-3}), ValueError, r"lr must be a positive", id="lr-negative"),
    pytest.param(
        training_with(plan_kwargs={"warmup_steps": -1}), ValueError, r"warmup_steps .* at least 0",
        id="warmup-negative",
    ),
    pytest.param(
        inference_with(batch_size=0), ValueError, r"batch_size must be at least 1", id="inference-batch-size-zero"
    ),
    pytest.param(
        inference_with(max_neighbors=0), ValueError, r"max_neighbors must be at least 1",
        id="inference-max-neighbors-zero",
    ),
    pytest.param(
        inference_with(indices=np.array([0, 10_000])), IndexError, r"positions of cells",
        id="inference-indices-out-of-range",
    ),
    pytest.param(
        with_embedding(ct.tl.smooth, sigma=0.0), ValueError, r"sigma must be positive", id="smooth-sigma-zero"
    ),
    pytest.param(
        with_embedding(ct.tl.domains, n_domains=0), ValueError, r"n_domains must be at least 1", id="domains-zero"
    ),
    pytest.param(
        with_embedding(ct.tl.domains, n_domains=3, use_rep="X_missing"), KeyError, r"model\.embed",
        id="domains-without-embedding",
    ),
]


@pytest.mark.parametrize(("prepare", "error", "message"), ERRORS)
def test_bad_input_is_refused_before_any_work(tissue, prepare, error, message):
    adata, call = prepare(tissue)
    before = adata.copy()
    with pytest.raises(error, match=message):
        call()
    assert changed_slots(before, adata) == set()


def without_counts_in_first_cell(adata):
    counts = adata.layers["counts"].toarray()
    counts[0, :] = 0
    adata.layers["counts"] = sparse.csr_matrix(counts)


def without_counts_in_first_gene(adata):
    counts = adata.layers["counts"].toarray()
    counts[:, 0] = 0
    adata.layers["counts"] = sparse.csr_matrix(counts)


WARNINGS = [
    pytest.param(
        without_counts_in_first_cell, r"1 cells have no counts.*still get an embedding.*filter_cells",
        id="cell-without-counts",
    ),
    pytest.param(
        without_counts_in_first_gene, r"1 genes have no counts.*predict zero.*filter_genes", id="gene-without-counts"
    ),
]


@pytest.mark.parametrize(("make_suspicious", "message"), WARNINGS)
def test_suspicious_input_warns_and_setup_goes_on(tissue, make_suspicious, message):
    make_suspicious(tissue)
    with pytest.warns(UserWarning, match=message):
        setup(tissue)
    assert "_scvi_labels" in tissue.obs
