"""Workloads shared by the benchmark scripts: the published configuration on synthetic tissue."""

from __future__ import annotations

import numpy as np
import squidpy as sq
import torch

import celltransformer as ct
from celltransformer.data import BatchKey
from celltransformer.data._loading import neighborhood_dataset

N_GENES = 500
N_CELL_TYPES = 30
BATCH_SIZE = 32
MAX_NEIGHBORS = 250
# One cell per 150 square microns: a radius r holds about pi r^2 / 150 neighbours.
REGIMES = {"~60 cells": 53.5, "~230 cells (cap 250)": 105.0}


def registered_tissue(radius: float, n_cells: int = 20_000, seed: int = 0):
    """Synthetic tissue with 500 genes and a squidpy radius graph, set up for CellTransformer."""
    adata = ct.datasets.synthetic_tissue(
        n_cells=n_cells, n_sections=2, n_genes=N_GENES, n_cell_types=N_CELL_TYPES, seed=seed
    )
    sq.gr.spatial_neighbors_radius(adata, radius=radius, library_key="section")
    ct.CellTransformer.setup_anndata(adata, layer="counts", cell_type_key="cell_type", library_key="section")
    return adata


def packed_batches(adata, n_batches: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Training batches of 32 reference cells, neighbourhoods capped at 250 at random."""
    manager = ct.CellTransformer._get_most_recent_anndata_manager(adata, required=True)
    dataset = neighborhood_dataset(manager, MAX_NEIGHBORS, random_cap=True)
    rng = np.random.default_rng(seed)
    return [
        dataset[BatchKey(rng.choice(adata.n_obs, BATCH_SIZE, replace=False), (seed, batch))]
        for batch in range(n_batches)
    ]


def published_module(seed: int = 0) -> ct.nn.CellTransformerModule:
    """The published configuration: d 384, 4 + 4 layers, 8 heads, feed-forward 2048, 500 genes."""
    torch.manual_seed(seed)
    return ct.nn.CellTransformerModule(n_genes=N_GENES, n_cell_types=N_CELL_TYPES)


def useful_training_flops(module: ct.nn.CellTransformerModule, offsets: torch.Tensor) -> float:
    """Floating-point operations a training step needs (forward + backward = 3 x forward).

    Counts the matrix multiplies of the projections, feed-forward blocks, expression projection,
    output head and the attention scores and weighted sums over each neighbourhood only (what the
    block-diagonal attention must compute, none of the masked-out work).
    """
    d = module.cls_token.shape[1]
    feedforward = module.encoder.layers[0].linear1.out_features
    n_genes = module.n_genes
    sizes = torch.diff(offsets).double()
    n_cells, n_neighborhoods = float(sizes.sum()), float(len(sizes))
    per_token_layer = 2 * (4 * d * d + 2 * d * feedforward)
    encoder = len(module.encoder.layers) * (
        (n_cells + n_neighborhoods) * per_token_layer + 4 * d * float(((sizes + 1) * (sizes + 2)).sum())
    )
    decoder = len(module.decoder.layers) * 2 * n_neighborhoods * per_token_layer
    expression = 2 * n_cells * (n_genes * d / 2 + d * d / 4)
    pooling = 2 * (n_cells * 2 * d * d + n_neighborhoods * d * d)
    head = 2 * n_neighborhoods * 4 * d * n_genes
    return 3 * (encoder + decoder + expression + pooling + head)
