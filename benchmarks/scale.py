"""Scale: setup, a training step and streaming inference on 100k, 1M and 3M cells.

For synthetic tissues of 100,000, 1 million and 3 million cells (500 genes, sparse counts, a
radius graph of about 60 neighbours per cell, 100,000 cells per section), prints for each: the
time and peak resident memory of ``setup_anndata`` (with the model and the neighbourhood dataset),
one training step at the published configuration, the throughput of streaming inference over
10,000 cells, and the projected time to embed all cells. Memory ("peak") is reported beyond the
AnnData itself, sampled every 5 ms during each phase: every tissue is simulated and written to an
``.h5ad`` by one process, and measured by a fresh process that reads it, whose resident memory
before setup is the baseline (Python, the libraries and the AnnData).

Usage::

    python benchmarks/scale.py [--sizes 100000 1000000 3000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import psutil
import scvi
import squidpy as sq
import torch

import celltransformer as ct
from celltransformer.data import BatchKey
from celltransformer.data._loading import neighborhood_dataset

sys.path.insert(0, str(Path(__file__).parent))
from _measure import peak_memory  # noqa: E402

CELLS_PER_SECTION = 100_000
RADIUS_UM = 53.5  # about 60 neighbours at one cell per 150 square microns
INFERENCE_CELLS = 10_000


def write_tissue(n_cells: int, path: Path) -> None:
    """Simulate the tissue, build its squidpy graph and write what the model needs."""
    start = time.perf_counter()
    adata = ct.datasets.synthetic_tissue(
        n_cells=n_cells, n_sections=max(1, n_cells // CELLS_PER_SECTION), n_genes=500, n_cell_types=30, mean_count=0.2
    )
    del adata.layers["counts"]
    sq.gr.spatial_neighbors_radius(adata, radius=RADIUS_UM, library_key="section")
    del adata.obsp["spatial_distances"]
    adata.uns["simulation_seconds"] = time.perf_counter() - start
    adata.write_h5ad(path)


def measure(path: Path) -> dict[str, float]:
    """All figures of one tissue (run in a fresh process)."""
    adata = ad.read_h5ad(path)
    n_cells = adata.n_obs
    record: dict[str, float] = {"cells": n_cells}
    record["simulation and squidpy graph (s)"] = float(adata.uns["simulation_seconds"])
    record["mean neighbours"] = adata.obsp["spatial_connectivities"].nnz / n_cells
    record["counts non-zero (%)"] = 100 * adata.X.nnz / np.prod(adata.shape)
    gc.collect()
    baseline = psutil.Process().memory_info().rss
    record["AnnData resident (MB)"] = baseline / 2**20

    with peak_memory(record, "setup", baseline):
        ct.CellTransformer.setup_anndata(adata, cell_type_key="cell_type", library_key="section")
        scvi.settings.seed = 0
        model = ct.CellTransformer(adata)
        dataset = neighborhood_dataset(model.adata_manager, model.max_neighbors, random_cap=True)

    optimizer = torch.optim.Adam(model.module.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    batch = dataset[BatchKey(rng.choice(n_cells, 32, replace=False), (0, 0))]
    with peak_memory(record, "training step", baseline):
        optimizer.zero_grad()
        model.module(batch)[2].loss.backward()
        optimizer.step()

    model.is_trained_ = True
    cells = np.sort(rng.choice(n_cells, INFERENCE_CELLS, replace=False))
    with peak_memory(record, "inference of 10,000 cells", baseline):
        model.get_latent_representation(indices=cells)
    rate = INFERENCE_CELLS / record["inference of 10,000 cells (s)"]
    record["inference (cells/s)"] = rate
    record["projected time to embed all cells (h)"] = n_cells / rate / 3600
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--write", nargs=2, metavar=("N_CELLS", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_tissue(int(args.write[0]), Path(args.write[1]))
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n_cells in args.sizes:
            path = Path(folder) / f"tissue_{n_cells}.h5ad"
            subprocess.run([sys.executable, __file__, "--write", str(n_cells), str(path)], check=True)
            result = subprocess.run(
                [sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True, check=True
            )
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            path.unlink()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU (published configuration)")
    print("| figure | " + " | ".join(f"{row['cells']:,} cells" for row in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for key in rows[0]:
        if key != "cells":
            print(f"| {key} | " + " | ".join(f"{row[key]:.2f}" for row in rows) + " |")


if __name__ == "__main__":
    main()
