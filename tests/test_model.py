"""The model end to end on a small synthetic tissue: setup, training, embeddings, save and load."""

import copy

import numpy as np
import pytest
import scvi
from scipy import sparse
import torch
from conftest import QUIET_TRAINING, TINY_MODEL, make_tissue

import celltransformer as ct
from celltransformer._constants import PACKED_KEYS
from celltransformer.data import BatchKey, NeighborhoodDataModule


def _setup(adata, **kwargs):
    kwargs.setdefault("cell_type_key", "cell_type")
    ct.CellTransformer.setup_anndata(adata, layer="counts", library_key="section", **kwargs)
    return adata


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained for a few epochs, with the state it started from."""
    scvi.settings.seed = 0
    adata = _setup(make_tissue())
    model = ct.CellTransformer(adata, **TINY_MODEL)
    initial_state = copy.deepcopy(model.module.state_dict())
    model.train(max_epochs=4, batch_size=16, plan_kwargs={"warmup_steps": 20}, **QUIET_TRAINING)
    return model, initial_state


def test_training_lowers_the_validation_nll(trained):
    model, initial_state = trained
    validation = model.validation_indices
    assert len(validation) > 0
    after = model.get_reconstruction_error(indices=validation)
    untrained = copy.deepcopy(model)
    untrained.module.load_state_dict(initial_state)
    before = untrained.get_reconstruction_error(indices=validation)
    assert after["nll"] < before["nll"] - 0.1
    assert after["pearson"] > before["pearson"]


def test_history_has_validation_nll_and_pearson(trained):
    model, _ = trained
    for key in ("nll_train", "nll_validation", "pearson_validation"):
        assert len(model.history[key]) == 4
    assert np.isfinite(model.history["nll_validation"].to_numpy(dtype=float)).all()


def test_embeddings_are_finite_and_written_to_obsm(trained):
    model, _ = trained
    latent = model.get_latent_representation()
    assert latent.shape == (model.adata.n_obs, TINY_MODEL["d_model"])
    assert np.isfinite(latent).all()
    adata = model.adata
    model.embed(adata, key_added="X_test")
    np.testing.assert_array_equal(adata.obsm["X_test"], latent)
    subset = model.get_latent_representation(indices=np.array([5, 1, 9]), batch_size=2)
    np.testing.assert_allclose(subset, latent[[5, 1, 9]], atol=1e-5)


def test_inference_is_deterministic_with_and_without_a_cap(trained):
    model, _ = trained
    np.testing.assert_array_equal(model.get_latent_representation(), model.get_latent_representation())
    capped = model.get_latent_representation(max_neighbors=3)
    np.testing.assert_array_equal(capped, model.get_latent_representation(max_neighbors=3))
    assert not np.allclose(capped, model.get_latent_representation())


def test_predicted_expression_is_a_mean_count_per_gene(trained):
    model, _ = trained
    predicted = model.get_predicted_expression(indices=np.arange(10))
    assert predicted.shape == (10, model.adata.n_vars)
    assert (predicted > 0).all()


def test_save_load_round_trip_gives_identical_embeddings(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "model")
    loaded = ct.CellTransformer.load(tmp_path / "model", adata=model.adata.copy())
    np.testing.assert_array_equal(loaded.get_latent_representation(), model.get_latent_representation())


def test_loading_onto_new_sections(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "model")
    other = make_tissue(n_cells=300, n_sections=1, seed=7)
    other.obs["section"] = other.obs["section"].cat.rename_categories({"section_0": "new_section"})
    loaded = ct.CellTransformer.load(tmp_path / "model", adata=other)
    latent = loaded.get_latent_representation()
    assert latent.shape == (300, TINY_MODEL["d_model"]) and np.isfinite(latent).all()


def test_unseen_cell_type_is_a_clear_error(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "model")
    other = make_tissue(n_cells=300, n_sections=1, seed=7)
    other.obs["cell_type"] = other.obs["cell_type"].cat.add_categories(["novel"])
    other.obs.iloc[0, other.obs.columns.get_loc("cell_type")] = "novel"
    with pytest.raises(ValueError, match="not seen in training.*'novel'"):
        ct.CellTransformer.load(tmp_path / "model", adata=other)


def test_cell_type_free_mode_trains(tissue):
    scvi.settings.seed = 0
    _setup(tissue, cell_type_key=None)
    model = ct.CellTransformer(tissue, **TINY_MODEL)
    assert model.module.decoder_cell_embed.num_embeddings == 1
    model.train(max_epochs=2, batch_size=32, plan_kwargs={"warmup_steps": 5}, **QUIET_TRAINING)
    assert np.isfinite(model.history["nll_validation"].to_numpy(dtype=float)).all()
    assert np.isfinite(model.get_latent_representation()).all()


def test_log1p_data_needs_the_explicit_option(tissue):
    tissue.layers["log1p"] = tissue.layers["counts"].copy()
    tissue.layers["log1p"].data = np.log1p(tissue.layers["log1p"].data)
    with pytest.raises(ValueError, match="expression_is_log1p=True"):
        ct.CellTransformer.setup_anndata(tissue, layer="log1p", cell_type_key="cell_type")
    ct.CellTransformer.setup_anndata(tissue, layer="log1p", cell_type_key="cell_type", expression_is_log1p=True)
    batch = ct.data.pack_batch(tissue, np.arange(5))
    expected = tissue.layers["counts"][np.arange(5)].toarray()
    np.testing.assert_allclose(batch["reference_counts"].numpy(), expected, rtol=1e-5, atol=1e-4)


def test_missing_graph_error_names_the_squidpy_call(tissue):
    del tissue.obsp["spatial_connectivities"]
    with pytest.raises(KeyError, match="sq.gr.spatial_neighbors"):
        _setup(tissue)


def test_pack_batch_returns_packed_tensors_and_masks(tissue):
    _setup(tissue)
    batch = ct.data.pack_batch(tissue, np.array([0, 1, 2]), return_masks=True)
    n_cells = int(batch["offsets"][-1])
    assert batch["neighbor_counts"].shape == (n_cells, tissue.n_vars)
    assert batch["encoder_mask"].shape == (n_cells + 3, n_cells + 3)
    assert batch["pooling_mask"].shape == (3, n_cells + 3)
    assert batch["decoder_mask"].shape == (6, 6)
    codes = tissue.obs["_scvi_labels"].to_numpy()
    np.testing.assert_array_equal(batch["reference_types"].numpy(), codes[:3])


def test_module_defaults_follow_the_published_model(tissue):
    _setup(tissue)
    model = ct.CellTransformer(tissue)
    assert model.module.cls_token.shape == (1, 384)
    assert model.max_neighbors == 250
    assert model.module.attention == "fast"
    with torch.no_grad():
        assert model.module.zinb_proj.mu.out_features == tissue.n_vars


def test_load_query_data_learns_new_cell_types_only(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "model")
    query = make_tissue(n_cells=300, n_sections=1, seed=7)
    query.obs["cell_type"] = query.obs["cell_type"].cat.add_categories(["novel"])
    query.obs.loc[query.obs.index[:40], "cell_type"] = "novel"
    query_model = ct.CellTransformer.load_query_data(query, tmp_path / "model")
    n_reference = model.module.encoder_cell_embed.num_embeddings
    assert query_model.module.encoder_cell_embed.num_embeddings == n_reference + 1
    before = {name: p.detach().clone() for name, p in query_model.module.state_dict().items()}
    query_model.train(max_epochs=1, batch_size=32, plan_kwargs={"warmup_steps": 1}, **QUIET_TRAINING)
    after = query_model.module.state_dict()
    for name, value in before.items():
        if name.endswith("cell_embed.weight"):
            torch.testing.assert_close(after[name][:n_reference], value[:n_reference], rtol=0, atol=0)
            assert not torch.equal(after[name][n_reference:], value[n_reference:])
        else:
            torch.testing.assert_close(after[name], value, rtol=0, atol=0)
    assert np.isfinite(query_model.get_latent_representation()).all()


def test_load_query_data_refuses_other_genes(trained):
    model, _ = trained
    query = make_tissue(n_cells=300, n_sections=1, seed=7)[:, ::-1].copy()
    with pytest.raises(ValueError, match="genes differ"):
        ct.CellTransformer.load_query_data(query, model)


def test_cell_without_neighbors_still_gets_an_embedding(trained):
    model, _ = trained
    adata = model.adata.copy()
    graph = adata.obsp["spatial_connectivities"].tolil()
    graph[0, :] = 0
    graph[:, 0] = 0
    adata.obsp["spatial_connectivities"] = graph.tocsr()
    latent = model.get_latent_representation(adata, indices=np.array([0, 1]))
    assert np.isfinite(latent).all()


def test_batch_key_centres_each_batch_and_accepts_new_batches(tissue):
    scvi.settings.seed = 0
    tissue.obs["animal"] = np.where(tissue.obs["section"] == "section_0", "A", "B")
    shifted = (tissue.obs["animal"].to_numpy() == "B").astype(float)
    tissue.layers["counts"] = sparse.diags(1.0 + 2.0 * shifted) @ tissue.layers["counts"]
    _setup(tissue, batch_key="animal")
    model = ct.CellTransformer(tissue, **TINY_MODEL)
    assert model.module.batch_projection is not None
    batch = ct.data.pack_batch(tissue, np.arange(4))
    means = batch["batch_log_means"].numpy()
    counts = tissue.layers["counts"]
    for code, animal in enumerate(["A", "B"]):
        rows = np.flatnonzero(tissue.obs["animal"].to_numpy() == animal)
        np.testing.assert_allclose(means[code], np.log1p(counts[rows].toarray()).mean(0), rtol=1e-5, atol=1e-6)
    model.train(max_epochs=1, batch_size=32, plan_kwargs={"warmup_steps": 5}, **QUIET_TRAINING)
    assert np.isfinite(model.get_latent_representation()).all()

    new = make_tissue(n_cells=200, n_sections=1, seed=9)
    new.obs["animal"] = "C"
    assert np.isfinite(model.get_latent_representation(new)).all()
    without_batches = make_tissue(n_cells=200, n_sections=1, seed=9)
    with pytest.raises(KeyError, match="batch_key"):
        model.get_latent_representation(without_batches)


def test_embed_streams_to_a_npy_file_without_touching_adata(trained, tmp_path):
    model, _ = trained
    adata = model.adata
    before = set(adata.obsm.keys())
    model.embed(adata, out=tmp_path / "embedding.npy", batch_size=7, progress_bar=False)
    on_disk = np.load(tmp_path / "embedding.npy", mmap_mode="r")
    np.testing.assert_allclose(on_disk, model.get_latent_representation(), atol=1e-6)
    assert set(adata.obsm.keys()) == before


def test_three_dimensional_tissue_trains_on_a_3d_squidpy_graph():
    import squidpy as sq

    adata = ct.datasets.synthetic_tissue(n_cells=600, n_sections=3, n_genes=80, n_cell_types=6, plane_spacing_um=15.0, seed=3)
    sq.gr.spatial_neighbors_radius(adata, radius=35.0)
    graph = adata.obsp["spatial_connectivities"].tocoo()
    planes = adata.obsm["spatial"][:, 2]
    assert (planes[graph.row] != planes[graph.col]).any(), "the 3D graph should link planes"
    ct.CellTransformer.setup_anndata(adata, layer="counts", cell_type_key="cell_type")
    scvi.settings.seed = 0
    model = ct.CellTransformer(adata, **TINY_MODEL)
    model.train(max_epochs=1, batch_size=32, plan_kwargs={"warmup_steps": 5}, **QUIET_TRAINING)
    model.embed(adata)
    ct.tl.smooth(adata, sigma=15.0)
    assert np.isfinite(adata.obsm["X_celltransformer_smoothed"]).all()


def test_gathering_counts_on_the_device_trains_identically(tissue):
    _setup(tissue)
    states = []
    for on_device in (False, True):
        scvi.settings.seed = 0
        model = ct.CellTransformer(tissue, **TINY_MODEL)
        model.train(max_epochs=1, batch_size=32, gather_on_device=on_device, plan_kwargs={"warmup_steps": 5}, **QUIET_TRAINING)
        states.append(model.module.state_dict())
    for name, value in states[0].items():
        torch.testing.assert_close(states[1][name], value, rtol=0, atol=0)


def test_device_gather_matches_the_cpu_gather():
    from celltransformer.data import DeviceExpression, ExpressionMatrix

    rng = np.random.default_rng(0)
    counts = sparse.random(60, 9, density=0.3, random_state=0, format="csr", dtype=np.float32)
    counts.data = np.round(counts.data * 10)
    rows = rng.integers(0, 60, 25)
    for matrix in (counts, counts.toarray()):
        expected = ExpressionMatrix(matrix).gather(rows)
        gathered = DeviceExpression(ExpressionMatrix(matrix), "cpu").gather(torch.as_tensor(rows))
        np.testing.assert_array_equal(gathered.numpy(), expected)


def test_training_and_validation_loaders_share_one_pass_over_the_counts(tissue, monkeypatch):
    _setup(tissue, batch_key="section")
    model = ct.CellTransformer(tissue, **TINY_MODEL)
    passes = []
    original = ct.data.ExpressionMatrix.mean_log1p_by_group
    monkeypatch.setattr(
        ct.data.ExpressionMatrix, "mean_log1p_by_group", lambda self, *a: passes.append(1) or original(self, *a)
    )
    datamodule = NeighborhoodDataModule(model.adata_manager, max_neighbors=5)
    train, validation = datamodule.dataset(random_cap=True), datamodule.dataset(random_cap=False)
    assert len(passes) == 1
    assert train.random_cap and not validation.random_cap
    key = BatchKey(np.arange(20), (0, 0, 0, 0))
    torch.testing.assert_close(validation[key], validation[BatchKey(np.arange(20), (1, 0, 0, 0))])
    assert not torch.equal(
        train[key][PACKED_KEYS.NEIGHBOR_INDICES], train[BatchKey(np.arange(20), (1, 0, 0, 0))][PACKED_KEYS.NEIGHBOR_INDICES]
    )
