"""Time of one training epoch on osmFISH, on the machine at hand.

Trains one epoch (training and validation, batch 32) on ``../shared/data/osmfish.h5ad`` with a
radius graph of 4 cell spacings, once with the model of the domain recipe (``docs/domains.md``)
and once with the published default architecture, and prints the wall time of each.

Usage::

    python benchmarks/osmfish_epoch.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import scanpy as sc
import scvi
import squidpy as sq
import torch

import celltransformer as ct

MODELS = {
    "domain recipe (d 64, 2 + 2 layers, ff 128)": {
        "d_model": 64, "n_heads": 4, "n_encoder_layers": 2, "n_decoder_layers": 2, "dim_feedforward": 128
    },
    "published default (d 384, 4 + 4 layers, ff 2048)": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[1].parent / "shared" / "data")
    args = parser.parse_args()
    adata = sc.read_h5ad(args.data / "osmfish.h5ad")
    spacing = ct.tl.cell_spacing(adata, library_key="section")
    sq.gr.spatial_neighbors_radius(adata, radius=4 * spacing, library_key="section")
    ct.CellTransformer.setup_anndata(adata, cell_type_key="cell_type", library_key="section", batch_key="section")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; osmFISH, {adata.n_obs} cells, batch 32")
    print("| model | one epoch, training and validation (s) |")
    print("|---|---|")
    for name, sizes in MODELS.items():
        scvi.settings.seed = 0
        model = ct.CellTransformer(adata, **sizes)
        start = time.perf_counter()
        model.train(max_epochs=1, batch_size=32, accelerator="cpu", enable_progress_bar=False)
        print(f"| {name} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
