"""Nothing lost, nothing mutated, reproducible and resumable: the model on every kind of input."""

import anndata
import numpy as np
import pytest
import scvi
import torch
from conftest import QUIET_TRAINING, SAVED_MODEL, SAVED_MODEL_TISSUE, TINY_MODEL, changed_slots, make_tissue
from lightning.pytorch.callbacks import ModelCheckpoint
from scipy import sparse

import celltransformer as ct

TRAINING = {"batch_size": 64, "plan_kwargs": {"warmup_steps": 2}, **QUIET_TRAINING}
DOCUMENTED_KEYS = {
    "uns['_scvi_uuid']",
    "uns['_scvi_manager_uuid']",
    "obs['_scvi_labels']",
    "obsm['X_celltransformer']",
    "obsm['X_celltransformer_smoothed']",
    "obs['domains']",
    "uns['domains']",  # the clustering's parameters and centres, documented by tl.domains
}


@pytest.fixture(scope="module")
def _small_tissue():
    return make_tissue(**SAVED_MODEL_TISSUE)


@pytest.fixture
def small_tissue(_small_tissue):
    """A fresh copy of a 200-cell, one-section tissue (not set up)."""
    return _small_tissue.copy()


def setup(adata, layer=None):
    ct.CellTransformer.setup_anndata(adata, layer=layer, cell_type_key="cell_type", library_key="section")
    return adata


def trained_model(adata, seed=0, max_epochs=1, training=None, **model_arguments):
    """A TINY_MODEL trained on a set-up ``adata`` with ``scvi.settings.seed = seed``.

    ``training`` adds keyword arguments of :meth:`~celltransformer.CellTransformer.train`.
    """
    scvi.settings.seed = seed
    model = ct.CellTransformer(adata, **TINY_MODEL, **model_arguments)
    model.train(max_epochs=max_epochs, **TRAINING, **(training or {}))
    return model


@pytest.fixture(scope="module")
def trained(_small_tissue):
    """A TINY_MODEL trained one epoch on the counts in ``adata.X`` (CSR, float32)."""
    return trained_model(setup(_small_tissue.copy()))


def test_only_documented_keys_change_through_setup_training_embedding_and_tools(small_tissue, tmp_path):
    before = small_tissue.copy()
    model = trained_model(setup(small_tissue, layer="counts"))
    model.embed(small_tissue)
    model.get_predicted_expression(indices=np.arange(10))
    model.get_reconstruction_error()
    model.save(tmp_path / "model")
    ct.tl.smooth(small_tissue, library_key="section")
    ct.tl.domains(small_tissue, n_domains=3, use_rep="X_celltransformer_smoothed")
    assert changed_slots(before, small_tissue) == DOCUMENTED_KEYS


MATRIX_FORMATS = {
    "csr-float64": lambda counts: counts.astype(np.float64),
    "csc-float32": sparse.csc_matrix,
    "csc-float64": lambda counts: sparse.csc_matrix(counts, dtype=np.float64),
    "dense-float32": lambda counts: counts.toarray(),
    "dense-float64": lambda counts: counts.toarray().astype(np.float64),
    "dense-int64": lambda counts: counts.toarray().astype(np.int64),
}


@pytest.mark.parametrize("matrix_format", list(MATRIX_FORMATS))
def test_every_matrix_format_trains_and_embeds_like_csr_float32(trained, small_tissue, matrix_format):
    matrix = MATRIX_FORMATS[matrix_format](small_tissue.X)
    small_tissue.X = matrix
    model = trained_model(setup(small_tissue))
    np.testing.assert_array_equal(model.get_latent_representation(), trained.get_latent_representation())
    assert small_tissue.X is matrix, "the user's matrix was replaced"


def test_a_view_gets_the_embeddings_of_its_copy(trained):
    parent = trained.adata.copy()
    before = parent.copy()
    view = parent[parent.obs["cell_type"] != "type_0"]
    expected = trained.get_latent_representation(view.copy())
    trained.embed(view)
    np.testing.assert_array_equal(view.obsm["X_celltransformer"], expected)
    assert changed_slots(before, parent) == set()


@pytest.mark.parametrize("layout", ["csr", "dense"])
def test_backed_anndata_trains_and_embeds_like_in_memory(small_tissue, tmp_path, layout):
    if layout == "dense":
        small_tissue.X = small_tissue.X.toarray()
    path = tmp_path / "tissue.h5ad"
    small_tissue.write_h5ad(path)
    backed = setup(anndata.read_h5ad(path, backed="r"))
    in_memory = setup(small_tissue)
    models = [trained_model(adata) for adata in (backed, in_memory)]
    for name, value in models[0].module.state_dict().items():
        torch.testing.assert_close(value, models[1].module.state_dict()[name], rtol=0, atol=0)
    np.testing.assert_array_equal(
        models[0].get_latent_representation(), models[1].get_latent_representation(in_memory)
    )


def test_backed_csc_counts_ask_for_csr(small_tissue, tmp_path):
    small_tissue.X = small_tissue.X.tocsc()
    path = tmp_path / "tissue.h5ad"
    small_tissue.write_h5ad(path)
    with pytest.raises(TypeError, match="CSC matrix on disk.*csr_matrix"):
        setup(anndata.read_h5ad(path, backed="r"))


def test_a_non_finite_loss_stops_training_and_names_the_likely_causes(small_tissue):
    setup(small_tissue)
    scvi.settings.seed = 0
    model = ct.CellTransformer(small_tissue, **TINY_MODEL)
    too_high = {**TRAINING, "plan_kwargs": {"lr": 100.0, "warmup_steps": 1}}
    with pytest.raises(FloatingPointError, match=r"training loss became nan.*raw counts.*learning rate.*lr"):
        model.train(max_epochs=1, **too_high)
    assert not model.is_trained


def test_seeded_trainings_repeat_exactly_with_dropout(small_tissue):
    setup(small_tissue)
    first, second, other_seed = (
        trained_model(small_tissue, seed=seed, dropout=0.1).get_latent_representation() for seed in (0, 0, 1)
    )
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other_seed)


def test_inference_is_identical_across_calls_and_batchings(trained):
    capped = trained.get_latent_representation(max_neighbors=2)
    np.testing.assert_array_equal(capped, trained.get_latent_representation(max_neighbors=2))
    order = np.random.default_rng(0).permutation(trained.adata.n_obs)
    rebatched = trained.get_latent_representation(indices=order, batch_size=7, max_neighbors=2)
    np.testing.assert_allclose(rebatched, capped[order], rtol=0, atol=1e-6)


def test_resumed_training_ends_where_an_uninterrupted_one_does(small_tissue, tmp_path, monkeypatch):
    # Checkpointing also makes scvi-tools save its best model to its logging folder.
    monkeypatch.setattr(scvi.settings, "logging_dir", tmp_path / "scvi_log")
    setup(small_tissue)
    uninterrupted = trained_model(small_tissue, max_epochs=4, dropout=0.1)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    trained_model(
        small_tissue, max_epochs=2, dropout=0.1, training={"callbacks": [checkpoints], "enable_checkpointing": True}
    )
    resumed = trained_model(
        small_tissue, max_epochs=4, dropout=0.1, training={"ckpt_path": str(tmp_path / "checkpoints" / "last.ckpt")}
    )
    expected = uninterrupted.module.state_dict()
    for name, value in resumed.module.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
    np.testing.assert_array_equal(resumed.get_latent_representation(), uninterrupted.get_latent_representation())
    np.testing.assert_array_equal(
        resumed.history["nll_train"].to_numpy(), uninterrupted.history["nll_train"].to_numpy()[2:]
    )


def test_a_model_saved_on_a_gpu_loads_on_the_cpu(trained, tmp_path, monkeypatch):
    with monkeypatch.context() as patched:
        # Saved tensors record the device they lived on; make every one claim the first GPU.
        patched.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        trained.save(tmp_path / "model")
    saved_locations = []
    torch.load(
        tmp_path / "model" / "model.pt",
        map_location=lambda storage, location: saved_locations.append(location) or storage,
        weights_only=False,
    )
    assert saved_locations and set(saved_locations) == {"cuda:0"}
    loaded = ct.CellTransformer.load(tmp_path / "model", adata=trained.adata.copy(), accelerator="cpu")
    assert loaded.module.device.type == "cpu"
    np.testing.assert_array_equal(loaded.get_latent_representation(), trained.get_latent_representation())


def test_the_committed_saved_model_still_loads(small_tissue):
    model = ct.CellTransformer.load(SAVED_MODEL, adata=small_tissue, accelerator="cpu")
    assert model.is_trained
    latent = model.get_latent_representation()
    assert latent.shape == (small_tissue.n_obs, TINY_MODEL["d_model"])
    assert np.isfinite(latent).all()
