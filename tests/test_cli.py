"""The ``celltransformer demo`` command."""

import anndata as ad

from celltransformer._cli import main


def test_demo_writes_embeddings_domains_and_a_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n-cells", "600", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "ARI against the simulated domains" in printed
    adata = ad.read_h5ad(tmp_path / "demo.h5ad")
    assert adata.obsm["X_celltransformer"].shape == (600, 64)
    assert adata.obs["domains"].nunique() <= 6
    assert (tmp_path / "domains.png").stat().st_size > 10_000
