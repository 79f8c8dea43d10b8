"""Neighbourhood pipeline throughput: sampling and packing, one process.

Prints neighbourhoods per second of the vectorised pipeline (CSR index arithmetic and one gather
per batch, as the training DataLoader uses it) next to a per-cell reference loop of the kind the
published loader runs (look up each reference cell's neighbours, gather its rows, append), on a
synthetic tissue with 500 genes and a radius graph of about 60 neighbours per cell.

Usage::

    python benchmarks/pipeline.py [--batches 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _workloads import BATCH_SIZE, MAX_NEIGHBORS, REGIMES, registered_tissue  # noqa: E402

import celltransformer as ct  # noqa: E402
from celltransformer.data import BatchKey  # noqa: E402
from celltransformer.data._loading import neighborhood_dataset  # noqa: E402


def per_cell_reference(adata, references: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pack a batch one reference cell at a time (the baseline the pipeline replaces)."""
    graph = adata.obsp["spatial_connectivities"]
    counts = adata.layers["counts"]
    types = adata.obs["cell_type"].cat.codes.to_numpy()
    blocks, type_blocks = [], []
    for cell in references:
        neighbors = graph[cell].indices
        if len(neighbors) > MAX_NEIGHBORS:
            neighbors = rng.choice(neighbors, MAX_NEIGHBORS, replace=False)
        blocks.append(counts[neighbors].toarray())
        type_blocks.append(types[neighbors])
    return np.concatenate(blocks), np.concatenate(type_blocks)


def throughput(pack, n_batches: int) -> float:
    """Neighbourhoods packed per second."""
    pack(0)
    start = time.perf_counter()
    for batch in range(1, n_batches + 1):
        pack(batch)
    return n_batches * BATCH_SIZE / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    adata = registered_tissue(REGIMES["~60 cells"], n_cells=50_000)
    manager = ct.CellTransformer._get_most_recent_anndata_manager(adata, required=True)
    dataset = neighborhood_dataset(manager, MAX_NEIGHBORS, random_cap=True)
    rng = np.random.default_rng(0)
    references = [rng.choice(adata.n_obs, BATCH_SIZE, replace=False) for _ in range(args.batches + 1)]
    degrees = np.diff(adata.obsp["spatial_connectivities"].indptr)

    vectorised = throughput(lambda b: dataset[BatchKey(references[b], (0, b))], args.batches)
    reference = throughput(lambda b: per_cell_reference(adata, references[b], rng), args.batches)
    print(f"{adata.n_obs} cells, {adata.n_vars} genes, mean neighbourhood {degrees.mean():.1f}, batch {BATCH_SIZE}")
    print("| pipeline                     | neighbourhoods / s |")
    print("|------------------------------|--------------------|")
    print(f"| vectorised (celltransformer) | {vectorised:18.0f} |")
    print(f"| per-cell reference loop      | {reference:18.0f} |")
    print(f"speed-up: {vectorised / reference:.1f}x")


if __name__ == "__main__":
    main()
