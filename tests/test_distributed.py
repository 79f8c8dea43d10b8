"""Distributed training through Lightning DDP, and the batch sampler's share of each process."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import make_tissue

import celltransformer as ct
from celltransformer.data import ReferenceBatchSampler

SCRIPT = Path(__file__).parent / "scripts" / "ddp_training.py"


def test_processes_share_each_epoch_exactly_once_padded_to_equal_length():
    cells = np.arange(103)
    shares = [
        np.concatenate([key.reference_indices for key in ReferenceBatchSampler(cells, 8, True, seed=3, num_replicas=4, rank=r)])
        for r in range(4)
    ]
    assert {len(share) for share in shares} == {26}
    together = np.concatenate(shares)
    assert set(together) == set(cells)
    assert len(together) - len(cells) == 1  # one cell repeated to pad 103 to 104


def test_ddp_on_two_cpu_processes_sees_every_cell_once_per_epoch_and_embeds_all(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    train_indices = np.sort(np.load(tmp_path / "train_indices.npy"))
    seen = [np.load(tmp_path / f"seen_rank{rank}.npz") for rank in (0, 1)]
    for epoch in ("epoch_0", "epoch_1"):
        shares = [ranks[epoch] for ranks in seen]
        assert len(shares[0]) == len(shares[1]) == len(train_indices) // 2
        np.testing.assert_array_equal(np.sort(np.concatenate(shares)), train_indices)
    adata = make_tissue(n_cells=400, n_sections=2, seed=1)
    model = ct.CellTransformer.load(tmp_path / "model", adata=adata)
    latent = model.get_latent_representation()
    assert latent.shape[0] == 400 and np.isfinite(latent).all()
    embedded_on_two_processes = np.load(tmp_path / "embedding.npy")
    np.testing.assert_allclose(embedded_on_two_processes, latent, rtol=1e-5, atol=1e-5)
