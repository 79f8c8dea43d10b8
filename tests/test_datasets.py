"""The embedded synthetic tissue."""

import numpy as np
import pandas as pd
import pytest

import celltransformer as ct


def test_same_seed_same_tissue_other_seed_other_tissue():
    first = ct.datasets.synthetic_tissue(n_cells=500, seed=3)
    second = ct.datasets.synthetic_tissue(n_cells=500, seed=3)
    third = ct.datasets.synthetic_tissue(n_cells=500, seed=4)
    assert (first.X != second.X).nnz == 0
    np.testing.assert_array_equal(first.obsm["spatial"], second.obsm["spatial"])
    pd.testing.assert_frame_equal(first.obs, second.obs)
    assert not np.allclose(first.obsm["spatial"], third.obsm["spatial"])


def test_layout_counts_sections_and_truth():
    adata = ct.datasets.synthetic_tissue(n_cells=3000, n_sections=3, n_genes=100, n_cell_types=8, seed=0)
    assert adata.shape == (3000, 100)
    counts = adata.layers["counts"]
    assert (counts.data >= 0).all() and np.array_equal(counts.data, np.round(counts.data))
    assert (adata.X != counts).nnz == 0
    assert adata.obs["section"].nunique() == 3
    assert adata.obs["section"].value_counts().tolist() == [1000, 1000, 1000]
    assert adata.obs["domain"].nunique() == 6
    assert adata.obs["cell_type"].nunique() == 8
    xy = adata.obsm["spatial"]
    density = 1000 / np.prod(xy[adata.obs["section"] == "section_0"].max(0))
    assert 1 / 200 < density < 1 / 100  # about one cell per 150 square microns


def test_domains_differ_in_cell_type_mixture_and_types_in_expression():
    adata = ct.datasets.synthetic_tissue(n_cells=6000, seed=0)
    composition = pd.crosstab(adata.obs["domain"], adata.obs["cell_type"], normalize="index").to_numpy()
    distances = np.abs(composition[:, None] - composition[None]).sum(-1)
    assert distances[~np.eye(len(composition), dtype=bool)].min() > 0.3
    means = pd.DataFrame(adata.X.toarray()).groupby(adata.obs["cell_type"].to_numpy()).mean().to_numpy()
    log_fold = np.log1p(means) - np.log1p(means.mean(0))
    assert (log_fold.max(axis=1) > 1.0).all()


def test_too_few_genes_is_an_error():
    with pytest.raises(ValueError, match="n_genes=20 is too small"):
        ct.datasets.synthetic_tissue(n_genes=20)


def test_three_dimensional_tissue_stacks_planes_with_one_layout():
    from sklearn.neighbors import KNeighborsClassifier

    adata = ct.datasets.synthetic_tissue(n_cells=3000, n_sections=3, plane_spacing_um=15.0, seed=2)
    xyz = adata.obsm["spatial"]
    assert xyz.shape == (3000, 3)
    assert sorted(np.unique(xyz[:, 2])) == [0.0, 15.0, 30.0]
    planes = adata.obs["section"].to_numpy()
    first = planes == "section_0"
    classifier = KNeighborsClassifier(5).fit(xyz[first, :2], adata.obs["domain"][first])
    other = planes == "section_2"
    assert classifier.score(xyz[other, :2], adata.obs["domain"][other]) > 0.9


def test_mean_count_controls_sparsity():
    dense = ct.datasets.synthetic_tissue(n_cells=500, seed=0)
    sparse_panel = ct.datasets.synthetic_tissue(n_cells=500, seed=0, mean_count=0.2)
    density = lambda adata: adata.X.nnz / np.prod(adata.shape)  # noqa: E731
    assert density(sparse_panel) < 0.35 < 0.6 < density(dense)
