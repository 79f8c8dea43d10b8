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
