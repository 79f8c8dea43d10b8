"""The demo job: synthetic tissue, squidpy graph, a small model, domains and their ARI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import scvi  # noqa: E402
import squidpy as sq  # noqa: E402

from . import datasets, pl, tl  # noqa: E402
from .model import CellTransformer  # noqa: E402

DEMO_RADIUS_UM = 40.0
DEMO_SMOOTHING_SIGMA_UM = 20.0
DEMO_MODEL = {"d_model": 64, "n_heads": 4, "n_encoder_layers": 2, "n_decoder_layers": 2, "dim_feedforward": 128}
DEMO_PLAN = {"warmup_steps": 100}


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, and how well the domains match the simulated truth."""

    h5ad: Path
    figure: Path
    ari: float
    nmi: float


def run_demo(out: Path, n_cells: int = 6000, max_epochs: int = 8, seed: int = 0, progress_bar: bool = True) -> DemoResult:
    """Train CellTransformer on a synthetic tissue and compare its domains with the truth.

    Parameters
    ----------
    out
        Folder for ``demo.h5ad`` (embeddings in ``obsm["X_celltransformer"]``, domains in
        ``obs["domains"]``) and ``domains.png`` (domains next to the truth).
    n_cells
        Cells of the synthetic tissue (three sections).
    max_epochs
        Training epochs.
    seed
        Seed of the tissue, the model and the clustering.
    progress_bar
        Whether to show the training progress bar.
    """
    out.mkdir(parents=True, exist_ok=True)
    scvi.settings.seed = seed
    adata = datasets.synthetic_tissue(n_cells=n_cells, n_sections=3, seed=seed)
    sq.gr.spatial_neighbors_radius(adata, radius=DEMO_RADIUS_UM, library_key="section")
    CellTransformer.setup_anndata(adata, layer="counts", cell_type_key="cell_type", library_key="section")
    model = CellTransformer(adata, **DEMO_MODEL)
    model.train(max_epochs=max_epochs, accelerator="cpu", plan_kwargs=DEMO_PLAN, enable_progress_bar=progress_bar)
    model.embed(adata, key_added="X_celltransformer")
    tl.smooth(adata, use_rep="X_celltransformer", sigma=DEMO_SMOOTHING_SIGMA_UM, library_key="section")
    n_domains = adata.obs["domain"].nunique()
    tl.domains(adata, n_domains=n_domains, use_rep="X_celltransformer_smoothed", key_added="domains", seed=seed)
    scores = tl.score_domains(adata, key="domains", truth_key="domain")

    h5ad = out / "demo.h5ad"
    adata.write_h5ad(h5ad)
    figure = out / "domains.png"
    fig = pl.domains(adata, keys=["domain", "domains"], library_key="section")
    fig.savefig(figure, dpi=120)
    return DemoResult(h5ad=h5ad, figure=figure, ari=scores["ari"], nmi=scores["nmi"])
