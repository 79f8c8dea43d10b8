"""Smoothing, domains, scores and plots."""

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData
from scipy import sparse

import celltransformer as ct


def _two_sections():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, size=(400, 2))
    adata = AnnData(obs=pd.DataFrame({"section": pd.Categorical(np.repeat(["a", "b"], 200))}))
    adata.obsm["spatial"] = xy
    adata.obsm["X_rep"] = rng.normal(size=(400, 3)).astype(np.float32)
    return adata


def test_smooth_averages_nearby_cells_within_sections_only():
    adata = _two_sections()
    adata.obsm["X_rep"][:200] = 1.0
    adata.obsm["X_rep"][200:] = -1.0
    ct.tl.smooth(adata, use_rep="X_rep", sigma=10.0, library_key="section")
    np.testing.assert_allclose(adata.obsm["X_rep_smoothed"][:200], 1.0, rtol=1e-5)
    np.testing.assert_allclose(adata.obsm["X_rep_smoothed"][200:], -1.0, rtol=1e-5)


def test_smooth_matches_a_direct_gaussian_average_and_is_chunk_independent():
    adata = _two_sections()
    ct.tl.smooth(adata, use_rep="X_rep", sigma=8.0, library_key="section", key_added="whole")
    ct.tl.smooth(adata, use_rep="X_rep", sigma=8.0, library_key="section", key_added="chunked", chunk_size=37)
    np.testing.assert_allclose(adata.obsm["whole"], adata.obsm["chunked"], rtol=1e-5, atol=1e-6)
    xy, rep = adata.obsm["spatial"][:200], adata.obsm["X_rep"][:200]
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    weights = np.exp(-0.5 * (distance / 8.0) ** 2) * (distance <= 24.0)
    expected = weights @ rep / weights.sum(1, keepdims=True)
    np.testing.assert_allclose(adata.obsm["whole"][:200], expected, rtol=1e-4, atol=1e-5)


def test_domains_cluster_separated_groups():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=10, size=(4, 8))
    truth = np.repeat(np.arange(4), 100)
    adata = AnnData(obs=pd.DataFrame({"truth": pd.Categorical(truth.astype(str))}))
    adata.obsm["X_celltransformer"] = (centers[truth] + rng.normal(size=(400, 8))).astype(np.float32)
    ct.tl.domains(adata, n_domains=4, seed=0)
    assert isinstance(adata.obs["domains"].dtype, pd.CategoricalDtype)
    assert ct.tl.score_domains(adata, "domains", "truth")["ari"] == pytest.approx(1.0)


def test_missing_embedding_is_a_clear_error():
    with pytest.raises(KeyError, match="model.embed"):
        ct.tl.domains(AnnData(np.zeros((5, 2))), n_domains=2)


def test_scores_ignore_excluded_cells_and_measure_coherence():
    obs = pd.DataFrame(
        {
            "domains": pd.Categorical(["0", "0", "1", "1", "1"]),
            "region": pd.Categorical(["A", "A", "B", "B", "Excluded"]),
        }
    )
    adata = AnnData(obs=obs)
    chain = sparse.diags([1, 1, 1, 1], 1, shape=(5, 5))
    adata.obsp["spatial_connectivities"] = (chain + chain.T).tocsr()
    scores = ct.tl.score_domains(adata, "domains", "region")
    assert scores["ari"] == pytest.approx(1.0)
    assert scores["n_cells_scored"] == 4
    assert scores["spatial_coherence"] == pytest.approx(6 / 8)


def test_domain_plot_has_a_panel_per_section_and_key():
    adata = _two_sections()
    adata.obs["domains"] = pd.Categorical(np.arange(400) % 3)
    adata.obs["truth"] = pd.Categorical(np.arange(400) % 2)
    fig = ct.pl.domains(adata, keys=["truth", "domains"], library_key="section")
    assert len(fig.axes) == 4
    panel = fig.axes[1].collections[0]
    assert len(panel.get_offsets()) == 200


def test_palette_is_distinct_for_hundreds_of_domains():
    from celltransformer.pl._palette import category_colors

    colors = category_colors(500)
    assert len(np.unique(np.round(colors, 3), axis=0)) == 500


def test_attention_mask_plot_draws_the_three_masks():
    fig = ct.pl.attention_masks({"offsets": torch.tensor([0, 3, 3, 5])})
    images = [ax.images[0].get_array() for ax in fig.axes[:3]]
    assert [image.shape for image in images] == [(8, 8), (3, 8), (6, 6)]
    assert images[2].sum() == 6


def _clustered(n_per_group=150, n_groups=4, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=10, size=(n_groups, dim))
    truth = np.repeat(np.arange(n_groups), n_per_group)
    adata = AnnData(obs=pd.DataFrame({"truth": pd.Categorical(truth.astype(str))}))
    adata.obsm["X_celltransformer"] = (centers[truth] + rng.normal(size=(len(truth), dim))).astype(np.float32)
    return adata, truth


def test_nested_resolutions_put_every_fine_domain_in_one_coarse_domain():
    adata, _ = _clustered(n_groups=6)
    ct.tl.domains(adata, n_domains=[12, 6, 2], seed=0)
    for k in (12, 6, 2):
        assert adata.obs[f"domains_{k}"].nunique() == k
    for fine, coarse in ((12, 6), (6, 2), (12, 2)):
        parents = pd.crosstab(adata.obs[f"domains_{fine}"], adata.obs[f"domains_{coarse}"]).gt(0).sum(axis=1)
        assert (parents == 1).all()
    assert ct.tl.score_domains(adata, "domains_6", "truth")["ari"] == pytest.approx(1.0)
    parents = adata.uns["domains"]["parents"]["12->6"]
    np.testing.assert_array_equal(
        parents[adata.obs["domains_12"].astype(int)], adata.obs["domains_6"].astype(int)
    )


def test_kmeans_matches_sklearn_quality_and_is_seeded():
    from sklearn.cluster import KMeans

    from celltransformer.tl._kmeans import minibatch_kmeans

    adata, truth = _clustered(n_per_group=400, n_groups=8, dim=16, seed=3)
    data = adata.obsm["X_celltransformer"]
    ours = minibatch_kmeans(data, 8, seed=1, batch_size=256)
    reference = KMeans(8, n_init=10, random_state=0).fit(data)
    assert ours.inertia <= 1.01 * reference.inertia_
    again = minibatch_kmeans(data, 8, seed=1, batch_size=256)
    np.testing.assert_array_equal(ours.labels, again.labels)


def test_leiden_finds_the_requested_number_of_domains():
    adata, _ = _clustered(n_groups=5)
    ct.tl.domains(adata, n_domains=5, method="leiden", key_added="leiden_domains")
    assert adata.obs["leiden_domains"].nunique() == 5
    assert ct.tl.score_domains(adata, "leiden_domains", "truth")["ari"] > 0.95
    assert list(adata.obsp.keys()) == [] and "neighbors" not in adata.uns


def test_stability_prefers_the_true_number_of_domains():
    adata, _ = _clustered(n_per_group=100, n_groups=4, seed=5)
    table = ct.tl.domain_stability(adata, n_domains=[2, 4, 7], n_repeats=3, seed=0)
    assert list(table["n_domains"]) == [2, 4, 7]
    assert table.set_index("n_domains").loc[4, "mean_ari"] == pytest.approx(1.0)
    assert adata.uns["domain_stability"]["suggested_n_domains"] == 4
    fig = ct.pl.domain_stability(adata)
    assert len(fig.axes[0].lines) >= 2


def test_composition_counts_fractions_and_markers():
    rng = np.random.default_rng(0)
    domains = np.repeat(["a", "b"], 100)
    types = np.where(domains == "a", rng.choice(["x", "y"], 200, p=[0.9, 0.1]), "z")
    counts = rng.poisson(1.0, size=(200, 6)).astype(np.float32)
    counts[domains == "b", 2] += 20
    adata = AnnData(X=counts, obs=pd.DataFrame({"domains": pd.Categorical(domains), "cell_type": pd.Categorical(types)}))
    adata.var_names = [f"g{i}" for i in range(6)]
    before = adata.X.copy()
    result = ct.tl.domain_composition(adata, "domains", "cell_type")
    assert result.counts.loc["b", "z"] == 100 and result.counts.loc["a", "z"] == 0
    np.testing.assert_allclose(result.fractions.sum(axis=1), 1.0)
    top_b = result.markers[result.markers["group"] == "b"].iloc[0]["names"]
    assert top_b == "g2"
    np.testing.assert_array_equal(adata.X, before)
    fig = ct.pl.composition(adata)
    assert fig.axes[0].images[0].get_array().shape == (2, 3)


def test_whiten_gives_unit_variance_principal_components_like_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    adata = AnnData(obs=pd.DataFrame(index=[str(i) for i in range(500)]))
    adata.obsm["X_rep"] = (rng.normal(size=(500, 6)) * [10, 5, 2, 1, 0.5, 0.1]).astype(np.float32)
    ct.tl.whiten(adata, use_rep="X_rep", n_comps=3)
    white = adata.obsm["X_rep_white"]
    np.testing.assert_allclose(white.std(axis=0, ddof=1), 1.0, rtol=1e-3)
    expected = PCA(3, whiten=True).fit_transform(adata.obsm["X_rep"])
    np.testing.assert_allclose(np.abs(white), np.abs(expected), rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="n_comps"):
        ct.tl.whiten(adata, use_rep="X_rep", n_comps=7)
