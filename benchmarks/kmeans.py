"""Domains at atlas scale: minibatch k-means of ``ct.tl.domains`` on millions of 384-d embeddings.

Clusters random embeddings of 384 dimensions (Gaussian blobs around ``k`` centres) into ``k``
domains and prints, per size: wall time, peak resident memory beyond the embedding itself
(sampled every 5 ms), the ARI against the blobs, and the time projected linearly to 10 million
cells. Runs on the GPU when torch sees one.

Usage::

    python benchmarks/kmeans.py [--sizes 250000 1000000] [--k 100 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import psutil
from sklearn.metrics import adjusted_rand_score

import celltransformer as ct
from celltransformer.tl._kmeans import default_device

sys.path.insert(0, str(Path(__file__).parent))
from _measure import peak_memory  # noqa: E402

DIMENSIONS = 384


def blobs(n_cells: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings around ``k`` random centres, generated block by block in float32."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=0.6, size=(k, DIMENSIONS)).astype(np.float32)
    truth = rng.integers(0, k, n_cells)
    embedding = np.empty((n_cells, DIMENSIONS), dtype=np.float32)
    for start in range(0, n_cells, 100_000):
        block = truth[start : start + 100_000]
        embedding[start : start + len(block)] = centers[block] + rng.standard_normal((len(block), DIMENSIONS), dtype=np.float32)
    return embedding, truth


def run(n_cells: int, k: int) -> dict[str, float]:
    embedding, truth = blobs(n_cells, k)
    adata = ad.AnnData(obs=pd.DataFrame(index=pd.RangeIndex(n_cells).astype(str)))
    adata.obsm["X_celltransformer"] = embedding
    record: dict[str, float] = {}
    with peak_memory(record, "clustering", psutil.Process().memory_info().rss):
        ct.tl.domains(adata, n_domains=k, seed=0)
    labels = adata.obs["domains"].cat.codes.to_numpy()
    return {
        "seconds": record["clustering (s)"],
        "peak beyond the embedding (MB)": record["clustering peak (MB)"],
        "ARI against the blobs": adjusted_rand_score(truth, labels),
        "projected to 10M cells (min)": record["clustering (s)"] * 10_000_000 / n_cells / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--k", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    print(f"device: {default_device()}, {DIMENSIONS} dimensions")
    print("| cells | k | seconds | peak beyond the embedding (MB) | ARI against the blobs | projected to 10M cells (min) |")
    print("|---|---|---|---|---|---|")
    for n_cells in args.sizes:
        for k in args.k:
            figures = run(n_cells, k)
            print(f"| {n_cells:,} | {k} | " + " | ".join(f"{value:.2f}" for value in figures.values()) + " |")


if __name__ == "__main__":
    main()
