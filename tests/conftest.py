"""Shared fixtures: a small synthetic tissue with its squidpy graph, and a tiny model size."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import squidpy as sq
from anndata import AnnData
from scipy import sparse

import celltransformer as ct

matplotlib.use("Agg")

TINY_MODEL = {"d_model": 32, "n_heads": 4, "n_encoder_layers": 1, "n_decoder_layers": 1, "dim_feedforward": 64}
QUIET_TRAINING = {"accelerator": "cpu", "enable_progress_bar": False}
SHARED_DATA = Path(os.environ.get("CELLTRANSFORMER_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


def make_tissue(n_cells: int = 600, n_sections: int = 2, seed: int = 1):
    """A small synthetic tissue with a 40-micron radius graph built per section."""
    adata = ct.datasets.synthetic_tissue(n_cells=n_cells, n_sections=n_sections, n_genes=80, n_cell_types=6, seed=seed)
    sq.gr.spatial_neighbors_radius(adata, radius=40.0, library_key="section")
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


# A TINY_MODEL saved by fixtures/make_saved_model.py after training on make_tissue(**SAVED_MODEL_TISSUE).
SAVED_MODEL = Path(__file__).parent / "fixtures" / "saved_model"
SAVED_MODEL_TISSUE = {"n_cells": 200, "n_sections": 1, "seed": 0}


def _same(before, after) -> bool:
    """Whether two values of an AnnData slot are equal, down to their types and dtypes."""
    if type(before) is not type(after):
        return False
    if sparse.issparse(before):
        return _same(before.toarray(), after.toarray())
    if isinstance(before, np.ndarray):
        return before.dtype == after.dtype and np.array_equal(before, after, equal_nan=before.dtype.kind == "f")
    if isinstance(before, pd.Series):
        return before.dtype == after.dtype and before.equals(after)
    if isinstance(before, dict):
        return before.keys() == after.keys() and all(_same(before[key], after[key]) for key in before)
    return before == after


def changed_slots(before: AnnData, after: AnnData) -> set[str]:
    """The slots of ``after`` that differ from ``before``, named like ``"X"`` or ``"obs['key']"``.

    A view is compared through its copy, whose slots are plain arrays.
    """
    before, after = (adata.copy() if adata.is_view else adata for adata in (before, after))
    changed = set()
    if not (before.obs_names.equals(after.obs_names) and before.var_names.equals(after.var_names)):
        changed.add("obs_names or var_names")
    if not _same(before.X, after.X):
        changed.add("X")
    for attr in ("obs", "var", "layers", "obsm", "obsp", "varm", "varp", "uns"):
        old, new = getattr(before, attr), getattr(after, attr)
        for key in set(old.keys()) | set(new.keys()):
            if key not in old or key not in new or not _same(old[key], new[key]):
                changed.add(f"{attr}[{key!r}]")
    return changed
