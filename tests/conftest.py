"""Shared fixtures: a small synthetic tissue with its squidpy graph, and a tiny model size."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import squidpy as sq

import celltransformer as ct

matplotlib.use("Agg")

TINY_MODEL = {"d_model": 32, "n_heads": 4, "n_encoder_layers": 1, "n_decoder_layers": 1, "dim_feedforward": 64}
QUIET_TRAINING = {"accelerator": "cpu", "enable_progress_bar": False}
SHARED_DATA = Path(os.environ.get("CELLTRANSFORMER_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


def make_tissue(n_cells: int = 600, n_sections: int = 2, seed: int = 1):
    """A small synthetic tissue with a 40-micron radius graph built per section."""
    adata = ct.datasets.synthetic_tissue(n_cells=n_cells, n_sections=n_sections, n_genes=80, n_cell_types=6, seed=seed)
    sq.gr.spatial_neighbors(adata, radius=40.0, coord_type="generic", library_key="section")
    return adata


@pytest.fixture(scope="session")
def _tissue():
    return make_tissue()


@pytest.fixture
def tissue(_tissue):
    """A fresh copy of the small synthetic tissue (not set up)."""
    return _tissue.copy()


def shared_file(name: str) -> Path:
    """A real dataset of ``../shared/data``; the test is skipped where that folder is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not available (set CELLTRANSFORMER_SHARED_DATA to its folder)")
    return path
