"""Integration on real osmFISH data (``../shared/data/osmfish.h5ad``)."""

import anndata as ad
import numpy as np
import scvi
import squidpy as sq
from conftest import QUIET_TRAINING, TINY_MODEL, shared_file

import celltransformer as ct


def test_osmfish_trains_and_embeds_every_cell():
    adata = ad.read_h5ad(shared_file("osmfish.h5ad"))
    sq.gr.spatial_neighbors_radius(adata, radius=50.0, library_key="section")
    ct.CellTransformer.setup_anndata(adata, cell_type_key="cell_type", library_key="section")
    scvi.settings.seed = 0
    model = ct.CellTransformer(adata, **TINY_MODEL)
    model.train(max_epochs=2, batch_size=64, plan_kwargs={"warmup_steps": 20}, **QUIET_TRAINING)
    nll = model.history["nll_validation"].to_numpy(dtype=float).ravel()
    assert np.isfinite(nll).all() and nll[-1] < nll[0]
    model.embed(adata)
    embedding = adata.obsm["X_celltransformer"]
    assert embedding.shape == (adata.n_obs, TINY_MODEL["d_model"])
    assert np.isfinite(embedding).all()
